"""What MAVI's answer about an asset means for a file: one table, every case."""

from __future__ import annotations

import pytest

from mavi_uploader.core.decisions import NOT_FOUND, Patience, Verdict, judge

P = Patience(not_found_seconds=600, processing_seconds=3600, max_resends=3)
ACCEPTED = 1000.0  # storage took the bytes at this time
SIZE = 5000

# (status, file_size, accepted_at, now, sends) -> verdict, words in the reason
CASES = [
    # after an upload storage accepted
    ("SUCCESS", SIZE, ACCEPTED, ACCEPTED + 1, 1, Verdict.DONE, "SUCCESS"),
    ("SUCCESS", None, ACCEPTED, ACCEPTED + 1, 1, Verdict.DONE, "SUCCESS"),
    ("SUCCESS", 10, ACCEPTED, ACCEPTED + 1, 1, Verdict.SEND_AGAIN, "holds 10 bytes"),
    ("SUCCESS", 10, ACCEPTED, ACCEPTED + 1, 4, Verdict.FAIL, "gave up after 4 complete"),
    ("WAITING", SIZE, ACCEPTED, ACCEPTED + 5, 1, Verdict.CONFIRM, "WAITING"),
    ("UPLOADING", None, ACCEPTED, ACCEPTED + 5, 1, Verdict.CONFIRM, "UPLOADING"),
    ("WAITING", SIZE, ACCEPTED, ACCEPTED + 3600, 1, Verdict.SEND_AGAIN, "still WAITING"),
    ("WAITING", SIZE, ACCEPTED, ACCEPTED + 3600, 4, Verdict.FAIL, "still WAITING"),
    ("SOMETHING_NEW", SIZE, ACCEPTED, ACCEPTED + 5, 1, Verdict.CONFIRM, "SOMETHING_NEW"),
    ("FAILED", SIZE, ACCEPTED, ACCEPTED + 1, 1, Verdict.SEND_AGAIN, "FAILED"),
    ("FAILED", SIZE, ACCEPTED, ACCEPTED + 1, 3, Verdict.SEND_AGAIN, "FAILED"),
    ("FAILED", SIZE, ACCEPTED, ACCEPTED + 1, 4, Verdict.FAIL, "FAILED; gave up"),
    (NOT_FOUND, None, ACCEPTED, ACCEPTED + 1, 1, Verdict.CONFIRM, "does not know"),
    (NOT_FOUND, None, ACCEPTED, ACCEPTED + 599, 1, Verdict.CONFIRM, "does not know"),
    (NOT_FOUND, None, ACCEPTED, ACCEPTED + 600, 1, Verdict.SEND_AGAIN, "still does not know"),
    (NOT_FOUND, None, ACCEPTED, ACCEPTED + 600, 4, Verdict.FAIL, "still does not know"),
    (NOT_FOUND, None, ACCEPTED, ACCEPTED - 50, 1, Verdict.CONFIRM, "0s after"),  # clock step
    # the resume check: we do not know whether our bytes ever landed
    ("SUCCESS", SIZE, None, ACCEPTED, 0, Verdict.DONE, "SUCCESS"),
    ("SUCCESS", 10, None, ACCEPTED, 0, Verdict.SEND_AGAIN, "holds 10 bytes"),
    ("WAITING", SIZE, None, ACCEPTED, 0, Verdict.CONFIRM, "confirming instead"),
    ("UPLOADING", SIZE, None, ACCEPTED, 0, Verdict.CONFIRM, "confirming instead"),
    ("WAITING", None, None, ACCEPTED, 0, Verdict.SEND, "without our bytes"),
    ("WAITING", 10, None, ACCEPTED, 0, Verdict.SEND, "without our bytes"),
    ("FAILED", SIZE, None, ACCEPTED, 0, Verdict.SEND_AGAIN, "FAILED; sending the file again"),
    (NOT_FOUND, None, None, ACCEPTED, 0, Verdict.SEND, "without our bytes"),
]


@pytest.mark.parametrize(
    ("status", "file_size", "accepted_at", "now", "sends", "verdict", "words"), CASES
)
def test_what_an_answer_means(
    status: str,
    file_size: int | None,
    accepted_at: float | None,
    now: float,
    sends: int,
    verdict: Verdict,
    words: str,
) -> None:
    outcome = judge(
        status,
        file_size,
        asset_id="re_1",
        size=SIZE,
        accepted_at=accepted_at,
        now=now,
        sends=sends,
        patience=P,
    )
    assert outcome.verdict is verdict
    assert words in outcome.reason


def test_the_reason_names_the_asset_and_says_what_happens_next() -> None:
    again = judge(
        "FAILED", SIZE, asset_id="re_9", size=SIZE, accepted_at=0, now=1, sends=1, patience=P
    )
    assert again.reason == "MAVI reported asset re_9 FAILED; sending the file again"
    spent = judge(
        "FAILED", SIZE, asset_id="re_9", size=SIZE, accepted_at=0, now=1, sends=4, patience=P
    )
    assert "max_resends = 3" in spent.reason
