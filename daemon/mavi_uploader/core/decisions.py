"""What MAVI's answer about an asset means for a file (pure: no IO, table-tested).

Storage accepting the bytes is not the end: MAVI may not know the asset for a while (404),
report WAITING or UPLOADING for minutes, or say FAILED. Only some answers justify sending a
whole file again (it may be 20 GB), and re-sends are capped. What a judgement makes of the
file's row is `outcomes.follow`'s.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

SUCCESS, FAILED = "SUCCESS", "FAILED"
NOT_FOUND = "NOT_FOUND"  # our name for a 404 or an empty answer: MAVI has no such asset (yet)
PROCESSING = ("WAITING", "UPLOADING")


class Verdict(str, enum.Enum):
    DONE = "done"  # MAVI holds our bytes and says SUCCESS
    CONFIRM = "confirm"  # MAVI holds, or will soon hold, our bytes: ask again later
    SEND = "send"  # (resume check) the asset lacks our bytes: send them to the same URL
    SEND_AGAIN = "send again"  # this asset will never be ours: a new asset, a full re-send
    FAIL = "fail"  # re-sends spent: a person has to look


@dataclass(frozen=True)
class Patience:
    """How long an accepted upload may stay unconfirmed, and how often a file is re-sent."""

    not_found_seconds: float = 600.0  # a 404 right after storage took the bytes is normal
    processing_seconds: float = 3600.0  # WAITING/UPLOADING this long: assume it is stuck
    max_resends: int = 3  # complete sends after the first, then `failed`


@dataclass(frozen=True)
class Judgement:
    """What an answer means (`verdict`) and why, in words for the journal."""

    verdict: Verdict
    reason: str


def judge(
    upload_status: str,
    file_size: int | None,
    *,
    asset_id: str,
    size: int | None,
    accepted_at: float | None,
    now: float,
    sends: int,
    patience: Patience,
) -> Judgement:
    """The judgement of MAVI's answer (`upload_status`, `file_size`) for our asset.

    `accepted_at` is when storage accepted our complete upload to this asset, None when we do
    not know that it did (the resume check after a stop); `sends` counts complete uploads of
    this version of the file that storage accepted.
    """
    if upload_status == SUCCESS:
        if file_size in (None, size):
            return Judgement(Verdict.DONE, f"MAVI confirmed asset {asset_id} (SUCCESS)")
        return send_again_or_fail(
            f"MAVI holds {file_size} bytes but the file has {size}", sends, patience
        )
    if accepted_at is None:
        if upload_status == FAILED:  # MAVI gave up on this asset: never send into it again
            return send_again_or_fail(f"MAVI reported asset {asset_id} FAILED", sends, patience)
        if upload_status in PROCESSING and file_size == size:
            return Judgement(
                Verdict.CONFIRM,
                f"asset {asset_id} already holds {size} bytes ({upload_status});"
                " confirming instead of sending again",
            )
        return Judgement(Verdict.SEND, f"asset {asset_id} is {upload_status} without our bytes")
    waited = max(0.0, now - accepted_at)
    if upload_status == FAILED:
        return send_again_or_fail(f"MAVI reported asset {asset_id} FAILED", sends, patience)
    if upload_status == NOT_FOUND:
        if waited < patience.not_found_seconds:
            return Judgement(
                Verdict.CONFIRM,
                f"MAVI does not know asset {asset_id} yet ({waited:.0f}s after storage took"
                " the bytes); asking again",
            )
        return send_again_or_fail(
            f"MAVI still does not know asset {asset_id} after {waited:.0f}s", sends, patience
        )
    if waited < patience.processing_seconds:
        return Judgement(Verdict.CONFIRM, f"MAVI reports {upload_status}")
    return send_again_or_fail(
        f"asset {asset_id} still {upload_status} after {waited:.0f}s", sends, patience
    )


def send_again_or_fail(why: str, sends: int, patience: Patience) -> Judgement:
    """Send the whole file again, unless `sends` complete uploads already exceed the cap."""
    if sends > patience.max_resends:
        return Judgement(
            Verdict.FAIL,
            f"{why}; gave up after {sends} complete uploads (max_resends = {patience.max_resends})",
        )
    return Judgement(Verdict.SEND_AGAIN, f"{why}; sending the file again")
