"""What MAVI's answers mean to the daemon: typed errors and the values of a successful call."""

from __future__ import annotations

from dataclasses import dataclass

from mavi_uploader.redaction import redact

SUCCESS_CODES = (200, "200", "0000", 0)
RATE_LIMIT_MESSAGE = "exceeded the limit"
AUTH_HINTS = {
    401: "check MAVI_API_KEY",
    402: "the MAVI account balance is exhausted; top it up",
    403: "the MAVI account is disabled or this IP is not allowed",
}


class MaviError(Exception):
    """Base of every outcome other than success; str() is safe to log and store."""

    def __init__(self, reason: str) -> None:
        super().__init__(redact(reason))

    @property
    def reason(self) -> str:
        return str(self)


class TransientError(MaviError):
    """Try again later: 5xx, timeouts, dropped connections, garbage bodies."""

    def __init__(self, reason: str, *, network: bool = False) -> None:
        super().__init__(reason)
        self.network = network  # could not reach the server at all


class StillRateLimited(TransientError):
    """Rate-limited answers outlasted the client's patience (`check` must not hang)."""


class RateLimited(MaviError):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class AuthProblem(MaviError):
    """401/402/403: nothing will work until a person acts; pause all uploads."""


class PermanentError(MaviError):
    """This file will never be accepted as it is (400, 409, 415...)."""


class NotFound(PermanentError):
    """404: MAVI does not know this (yet)."""


class SignedUrlRejected(MaviError):
    """Storage refused the signed URL; sign again (a new asset_id)."""

    def __init__(self, reason: str, *, expired: bool) -> None:
        super().__init__(reason)
        self.expired = expired


@dataclass(frozen=True)
class SignedUpload:
    asset_id: str
    url: str
    expires_at: float  # epoch seconds


@dataclass(frozen=True)
class AssetStatus:
    upload_status: str  # WAITING | UPLOADING | SUCCESS | FAILED (or whatever MAVI says)
    file_size: int | None
