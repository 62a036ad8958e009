"""What becomes of a file after each step of its upload: tables of pure outcomes (no journal,
no files, an injected `now` and rng)."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from mavi_uploader.core import outcomes
from mavi_uploader.core.decisions import Judgement, Verdict
from mavi_uploader.core.handoffs import Owed
from mavi_uploader.core.outcomes import Outcome
from mavi_uploader.core.records import EMPTY_FILE, NEW_VERSION, NO_ASSET, FileRecord, State
from mavi_uploader.core.retry import CONFIRM_BACKOFF, MAX_SERVER_FAILURES, UPLOAD_BACKOFF

NOW = 1_000_000.0
OWNER = "42:w1"
LEASE_DROPPED = {"lease_owner": None, "lease_expires_at": None}
URL_CLEARED = {"signed_url": None, "url_expires_at": None}
MOVE = Owed(after_upload=True)  # a file finishing now owes its after_upload move


def record(**changes: Any) -> FileRecord:
    """A row a worker holds: uploading, with an asset and a URL."""
    base = FileRecord(
        id=7, path="/watch/a.mp4", watch_root="/watch", state=State.UPLOADING, size=5000,
        mtime_ns=1, stable_since=0.0, sha256="ab" * 32, asset_id="re_1",
        signed_url="https://storage/x?sig=1", url_expires_at=NOW + 3600, duplicate_of=None,
        attempts=0, next_attempt_at=None, confirm_polls=0, last_error=None, lease_owner=OWNER,
        lease_expires_at=NOW + 900, bytes_sent=0, created_at=0.0, updated_at=0.0,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


def rng() -> random.Random:
    return random.Random(0)


def twin(**changes: Any) -> FileRecord:
    return record(id=3, path="/watch/copy.mp4", sends=4, asset_id="re_9", **changes)


# name, the outcome, its state (None: stays, no event), fields it must write, words in its reason
TABLE: list[tuple[str, Callable[[], Outcome | None], State | None, Mapping[str, Any], str]] = [
    # the ends of an attempt
    ("failed", lambda: outcomes.failed("415 Unsupported"), State.FAILED,
     {"last_error": "415 Unsupported", **LEASE_DROPPED}, "415 Unsupported"),
    ("vanished", lambda: outcomes.vanished("gone"), State.VANISHED,
     {**LEASE_DROPPED, **URL_CLEARED}, "gone"),
    ("empty file", outcomes.empty_file, State.SKIPPED,
     {"last_error": EMPTY_FILE, **LEASE_DROPPED, **URL_CLEARED}, "empty file (0 bytes)"),
    ("done, owing a move", lambda: outcomes.finished(State.DONE, "ok", owed=MOVE), State.DONE,
     {"after_upload_due": 1, "last_error": None, **LEASE_DROPPED, **URL_CLEARED}, "ok"),
    ("done, keep", lambda: outcomes.finished(State.DONE, "ok", owed=Owed()), State.DONE,
     {"after_upload_due": 0}, "ok"),
    # settling again: a new version forgets hash and asset; a missing file vanishes
    ("changed", lambda: outcomes.settle_again("changed", (6000, 2), now=NOW), State.SETTLING,
     {**NEW_VERSION, "size": 6000, "mtime_ns": 2, "stable_since": NOW, **LEASE_DROPPED},
     "changed"),
    ("held open", lambda: outcomes.settle_again("held", (5000, 1), now=NOW, last_error="held"),
     State.SETTLING, {"last_error": "held", "sha256": None, "asset_id": None}, "held"),
    ("changed, then gone", lambda: outcomes.settle_again("changed", None, now=NOW, last_error="x"),
     State.VANISHED, {**LEASE_DROPPED, **URL_CLEARED}, "changed; then it disappeared"),
    # release on stop or pause: no attempt counted
    ("release uploading", lambda: outcomes.release(record(), OWNER, "stopping"), State.QUEUED,
     {"next_attempt_at": None, **LEASE_DROPPED}, "stopping"),
    ("release confirming",
     lambda: outcomes.release(record(state=State.CONFIRMING), OWNER, "paused: 402"), None,
     LEASE_DROPPED, "paused: 402"),
    # sending
    ("signed", lambda: outcomes.signed("re_2", "https://u", NOW + 60), State.UPLOADING,
     {"asset_id": "re_2", "signed_url": "https://u", "url_expires_at": NOW + 60},
     "signed: asset re_2"),
    ("resume sends", lambda: outcomes.send_to_same_asset("asset re_1 is WAITING without our bytes"),
     State.UPLOADING, {}, "without our bytes; sending"),
    ("forget the asset", lambda: outcomes.forget_asset("signing again"), None, NO_ASSET,
     "signing again"),
    ("accepted", lambda: outcomes.accepted(record(sends=1), "took it", now=NOW, bytes_sent=5000),
     State.CONFIRMING, {"sends": 2, "accepted_at": NOW, "confirm_polls": 0, "mavi_status": None,
                        "mavi_status_since": None, "next_attempt_at": None, "bytes_sent": 5000},
     "took it"),
    # dedupe: a twin with the same content
    ("twin in flight", lambda: outcomes.wait_for_twin(twin(), "cd"), State.QUEUED,
     {"sha256": "cd", "next_attempt_at": None, **LEASE_DROPPED},
     "same content as #3, in flight; waiting for it"),
    ("twin spent", lambda: outcomes.content_spent(twin(state=State.FAILED), "cd"), State.FAILED,
     {"sha256": "cd"}, "did not take after 4 complete uploads; `retry 3`"),
    ("twin done", lambda: outcomes.duplicate(twin(state=State.DONE), "cd", owed=MOVE),
     State.DUPLICATE, {"sha256": "cd", "duplicate_of": 3, "asset_id": "re_9",
                       "after_upload_due": 1, "last_error": None, **URL_CLEARED},
     "same content as #3 (/watch/copy.mp4), asset re_9"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("build", "state", "fields", "words"),
    [case[1:] for case in TABLE],
    ids=[case[0] for case in TABLE],
)
def test_each_step_ends_in_one_outcome(
    build: Callable[[], Outcome | None], state: State | None, fields: dict[str, Any], words: str
) -> None:
    outcome = build()
    assert outcome is not None
    assert outcome.state is state and outcome.event is (state is not None)
    assert {k: outcome.fields.get(k, "missing") for k in fields} == fields
    assert words in outcome.reason


def test_in_flight_moves_keep_the_lease_and_a_failed_file_keeps_no_url_nor_content() -> None:
    assert "lease_owner" not in outcomes.signed("re_2", "https://u", NOW).fields
    assert "lease_owner" not in outcomes.accepted(record(), "took it", now=NOW).fields
    failed = outcomes.failed("400")
    assert failed.fields["signed_url"] is None and failed.fields["content_claimed"] == 0
    assert failed.fields["lease_owner"] is None


@pytest.mark.parametrize(
    "current",
    [None, record(lease_owner="99:w2"), record(lease_owner=None)],
    ids=["row gone", "another worker's", "nobody's"],
)
def test_a_row_that_is_not_ours_is_not_released(current: FileRecord | None) -> None:
    assert outcomes.release(current, OWNER, "stopping") is None


def test_an_outcome_cannot_be_changed_once_made() -> None:
    outcome = outcomes.failed("400")
    with pytest.raises(TypeError):
        outcome.fields["last_error"] = None  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.reason = "other"  # type: ignore[misc]


# ---- retry or give up ------------------------------------------------------------------------

# server_failures, attempts, counts -> state, server_failures, attempts, words
RETRIES = [
    (0, 0, True, State.QUEUED, 1, 1, "503; retry in"),
    (3, 7, True, State.QUEUED, 4, 8, "503; retry in"),
    (MAX_SERVER_FAILURES - 2, 20, True, State.QUEUED, MAX_SERVER_FAILURES - 1, 21, "retry in"),
    (MAX_SERVER_FAILURES - 1, 20, True, State.FAILED, MAX_SERVER_FAILURES, 21,
     f"gave up after {MAX_SERVER_FAILURES} server failures: 503"),
    # an offline network or an unreadable file never brings a file closer to failed
    (MAX_SERVER_FAILURES - 1, 20, False, State.QUEUED, MAX_SERVER_FAILURES - 1, 21, "retry in"),
    (0, 500, False, State.QUEUED, 0, 501, "retry in"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("failures", "attempts", "counts", "state", "after", "tries", "words"), RETRIES
)
def test_retry_or_give_up(
    failures: int, attempts: int, counts: bool, state: State, after: int, tries: int, words: str
) -> None:
    rec = record(server_failures=failures, attempts=attempts)
    outcome = outcomes.retry_later(rec, "503", counts=counts, now=NOW, rng=rng())
    assert outcome.state is state and words in outcome.reason
    fields = outcome.fields
    assert (fields["server_failures"], fields["attempts"]) == (after, tries)
    assert fields["last_error"] == "503" and fields["lease_owner"] is None
    assert "asset_id" not in fields  # a retry sends to the same asset
    if state is State.FAILED:
        assert outcome.delay is None and "next_attempt_at" not in fields
        return
    # Server failures set the pace when they count; otherwise every attempt does.
    n = after if counts else tries
    raw = min(UPLOAD_BACKOFF.cap, UPLOAD_BACKOFF.base * UPLOAD_BACKOFF.factor ** (n - 1))
    assert outcome.delay is not None and raw / 2 <= outcome.delay <= raw
    assert fields["next_attempt_at"] == NOW + outcome.delay
    assert f"retry in {outcome.delay:.0f}s" in outcome.reason


def test_giving_up_draws_no_jitter() -> None:
    gen = rng()
    state = gen.getstate()
    rec = record(server_failures=MAX_SERVER_FAILURES - 1)
    assert outcomes.retry_later(rec, "503", now=NOW, rng=gen).state is State.FAILED
    assert gen.getstate() == state


def test_the_same_inputs_make_the_same_outcome() -> None:
    rec = record(attempts=2)
    assert outcomes.retry_later(rec, "x", now=NOW, rng=rng()) == outcomes.retry_later(
        rec, "x", now=NOW, rng=rng()
    )


def test_upload_again_forgets_the_asset_and_counts_no_server_failure() -> None:
    outcome = outcomes.upload_again(record(server_failures=2), "FAILED", now=NOW, rng=rng())
    assert outcome.state is State.QUEUED
    assert {k: outcome.fields[k] for k in NO_ASSET} == NO_ASSET
    assert outcome.fields["server_failures"] == 2 and outcome.fields["attempts"] == 1


def test_a_failed_step_of_a_confirming_row_polls_again_instead() -> None:
    rec = record(state=State.CONFIRMING, confirm_polls=2)
    outcome = outcomes.retry_later(rec, "internal error", now=NOW, rng=rng())
    assert outcome.state is None
    assert outcome.fields["confirm_polls"] == 3 and "attempts" not in outcome.fields


# ---- poll later ---------------------------------------------------------------------------


# polls so far, MAVI's last answer, this answer -> state (None: no event), since, last_error
POLLS = [
    (0, None, None, None, "missing", "metadata: 503"),  # MAVI not reached: the error is kept
    (0, None, "WAITING", State.CONFIRMING, NOW, None),  # a first answer is an event
    (4, "WAITING", "WAITING", None, "missing", None),  # the same answer: quiet
    (4, "WAITING", "UPLOADING", State.CONFIRMING, NOW, None),  # a new answer: an event
    (30, "NOT_FOUND", "NOT_FOUND", None, "missing", None),
]


@pytest.mark.parametrize(("polls", "said", "says", "state", "since", "error"), POLLS)
def test_poll_later(
    polls: int,
    said: str | None,
    says: str | None,
    state: State | None,
    since: object,
    error: str | None,
) -> None:
    rec = record(state=State.CONFIRMING, confirm_polls=polls, mavi_status=said)
    outcome = outcomes.poll_later(rec, "metadata: 503", now=NOW, rng=rng(), mavi_status=says)
    fields = outcome.fields
    assert outcome.state is state
    assert fields["confirm_polls"] == polls + 1 and fields["last_error"] == error
    assert fields.get("mavi_status_since", "missing") == since
    assert fields["lease_owner"] is None  # the row is free for any worker once due
    raw = min(CONFIRM_BACKOFF.cap, CONFIRM_BACKOFF.base * CONFIRM_BACKOFF.factor**polls)
    assert outcome.delay is not None and raw / 2 <= outcome.delay <= raw
    assert fields["next_attempt_at"] == NOW + outcome.delay


# ---- what a judgement of MAVI's answer makes of a confirming row --------------------------

# verdict -> state, words
FOLLOWS = [
    (Verdict.DONE, State.DONE, "said"),
    (Verdict.CONFIRM, State.CONFIRMING, "said"),
    (Verdict.FAIL, State.FAILED, "said"),
    (Verdict.SEND_AGAIN, State.QUEUED, "said; retry in"),
]


@pytest.mark.parametrize(("verdict", "state", "words"), FOLLOWS)
def test_follow_a_judgement(verdict: Verdict, state: State, words: str) -> None:
    rec = record(state=State.CONFIRMING)
    outcome = outcomes.follow(
        rec, Judgement(verdict, "said"), "WAITING", now=NOW, rng=rng(), owed=MOVE
    )
    assert outcome.state is state and words in outcome.reason
    if state is State.DONE:
        assert outcome.fields["after_upload_due"] == 1
    if state is State.QUEUED:
        assert outcome.fields["asset_id"] is None  # a new asset, a full re-send
