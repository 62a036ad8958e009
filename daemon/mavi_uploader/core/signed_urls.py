"""Signed URLs: when a journaled one is reused, and how many refusals a send tolerates (pure).

Storage checks a URL's expiry when a request starts (MAVI_API.md), so a journaled URL is
reused while it stays valid long enough for a send to start; asking for the whole send's
duration would never reuse the URL of a file that takes longer to send than a URL lives.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mavi_uploader.core.records import FileRecord

# Covers the wait for a rate slot before the send starts.
URL_START_MARGIN_SECONDS = 60.0
# Fresh URLs that storage calls expired at once: a clock or server problem, not ours.
MAX_EXPIRED_URLS = 3


def url_reusable(rec: FileRecord, now: float) -> bool:
    """Does the row hold a signed URL that stays valid for a send to start?"""
    if not (rec.asset_id and rec.signed_url and rec.url_expires_at):
        return False
    return rec.url_expires_at - now >= URL_START_MARGIN_SECONDS


class UrlVerdict(str, enum.Enum):
    SIGN_AGAIN = "sign again"  # a new asset and URL, and send at once
    FAIL = "fail"  # storage refused a URL signed afresh too: this file will not go
    RETRY_LATER = "retry later"  # too many fresh URLs "expired": try again after a backoff


@dataclass(frozen=True)
class UrlRejections:
    """The signed URLs storage rejected during one send: `refused` for a reason of its own
    (403, a bad signature...), `total` counting expired ones too."""

    refused: int = 0
    total: int = 0

    def after(self, *, expired: bool) -> UrlRejections:
        """The count once storage rejected one more URL (`expired`: for its age)."""
        return UrlRejections(self.refused + (not expired), self.total + 1)

    @property
    def verdict(self) -> UrlVerdict:
        if self.refused > 1:
            return UrlVerdict.FAIL
        if self.total > MAX_EXPIRED_URLS:
            return UrlVerdict.RETRY_LATER
        return UrlVerdict.SIGN_AGAIN

    def explain(self, reason: str) -> str:
        """Storage's `reason` for the last rejection, with what the count adds to it."""
        if self.verdict is UrlVerdict.FAIL:
            return f"{reason} (after signing again)"
        if self.verdict is UrlVerdict.RETRY_LATER:
            return f"{reason} ({self.total} fresh URLs)"
        return reason
