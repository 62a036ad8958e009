"""What becomes of a file after one step of its upload (pure: no IO, table-tested).

Each step of the worker ends in an `Outcome`: the state the row moves to (or None: it stays,
bookkeeping only), the reason its event carries, and every column to write. The ledger
writes an outcome as one journal call; nothing here touches the journal, a file or a clock
(`now` and the rng are arguments).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from mavi_uploader.core.decisions import Judgement, Verdict
from mavi_uploader.core.handoffs import KEY_OF, HandoffKind, Owed
from mavi_uploader.core.records import EMPTY_FILE, FileRecord, display_path
from mavi_uploader.core.retry import MAX_SERVER_FAILURES, Backoffs
from mavi_uploader.core.states import (
    FINAL_STATES,
    IN_FLIGHT,
    NEW_VERSION,
    NO_ASSET,
    RELEASE_LEASE,
    SPENT_URL,
    State,
)

FINISHED: tuple[State, ...] = (State.DONE, State.DUPLICATE)  # after_upload may be owed


@dataclass(frozen=True)
class Outcome:
    """One write: `state` None keeps the row where it is, without an event."""

    state: State | None
    reason: str
    fields: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    delay: float | None = None  # seconds until the row is due again (also in `fields`)
    # Hand-offs the move makes owed, written in its transaction (only a move to done/duplicate)
    handoffs: tuple[HandoffKind, ...] = ()

    @property
    def event(self) -> bool:
        return self.state is not None


def move(state: State, why: str, *, delay: float | None = None, **fields: Any) -> Outcome:
    """A transition made under a worker's lease: leaving the in-flight states drops the
    lease, and a file settled for good keeps no signed URL (a credential of no further use)."""
    if state not in IN_FLIGHT:
        for key, value in RELEASE_LEASE.items():
            fields.setdefault(key, value)
    if state in FINAL_STATES:
        # A finished row holds no content for its copies, and keeps no signed URL: a
        # credential of no further use (a `retry` asks MAVI about the asset, then signs anew).
        fields.update(SPENT_URL, content_claimed=0)
    return Outcome(state, why, MappingProxyType(fields), delay)


def stay(why: str, *, delay: float | None = None, **fields: Any) -> Outcome:
    """Bookkeeping under the lease: no state change, no event (`why` is for the log)."""
    return Outcome(None, why, MappingProxyType(fields), delay)


# ---- ends of an attempt ---------------------------------------------------------------------


def failed(why: str, **fields: Any) -> Outcome:
    """Permanent: a person has to look (`retry`). `last_error` is `why` unless given."""
    fields.setdefault("last_error", why)
    return move(State.FAILED, why, **fields)


def vanished(why: str) -> Outcome:
    return move(State.VANISHED, why)


def empty_file() -> Outcome:
    return move(State.SKIPPED, "empty file (0 bytes)", last_error=EMPTY_FILE)


def finished(state: State, why: str, *, owed: Owed, **fields: Any) -> Outcome:
    """Done or duplicate; the after_upload move/delete and the hand-offs are owed in the same
    commit (`owed`), and errors of earlier attempts are history now."""
    assert state in FINISHED
    fields.setdefault("last_error", None)
    if owed.handoffs:
        why += "; hand-off owed: " + ", ".join(KEY_OF[k] for k in owed.handoffs)
    done = move(state, why, after_upload_due=int(owed.after_upload), **fields)
    return dataclasses.replace(done, handoffs=owed.handoffs)


def settle_again(
    why: str, size_mtime: tuple[int, int] | None, *, now: float, **fields: Any
) -> Outcome:
    """The file changed under us, or is still being written (`size_mtime` as it is now, None
    when it is gone): settle again, forgetting its hash and asset (a new version)."""
    if size_mtime is None:
        return vanished(f"{why}; then it disappeared")
    size, mtime_ns = size_mtime
    return move(
        State.SETTLING, why, size=size, mtime_ns=mtime_ns, stable_since=now,
        **{**NEW_VERSION, **fields},
    )  # fmt: skip


def release(current: FileRecord | None, owner: str, why: str) -> Outcome | None:
    """Give the row back without counting an attempt (stop, pause, a write that failed);
    None when it is not `owner`'s any more."""
    if current is None or current.lease_owner != owner:
        return None
    if current.state is State.UPLOADING:
        return move(State.QUEUED, why, next_attempt_at=None)
    return stay(why, **RELEASE_LEASE)


DEFAULT_BACKOFFS = Backoffs()


# ---- retries ------------------------------------------------------------------------------


def retry_later(
    rec: FileRecord,
    why: str,
    *,
    counts: bool = True,
    now: float,
    rng: random.Random,
    backoffs: Backoffs = DEFAULT_BACKOFFS,
) -> Outcome:
    """A failed step: back to queued after a backoff (same asset), or failed if spent; a
    confirming row just polls again later.

    `counts=False` for failures a person or the network fixes (unreadable file, offline):
    they never make a file `failed`.
    """
    if rec.state is State.CONFIRMING:
        return poll_later(rec, why, now=now, rng=rng, backoffs=backoffs)
    return _retry(rec, why, counts=counts, fresh_asset=False, now=now, rng=rng, backoffs=backoffs)


def upload_again(
    rec: FileRecord,
    why: str,
    *,
    now: float,
    rng: random.Random,
    backoffs: Backoffs = DEFAULT_BACKOFFS,
) -> Outcome:
    """MAVI will not confirm this asset: sign and send the whole file again (the cap on
    complete sends is the judgement's; failures of the server count elsewhere)."""
    return _retry(rec, why, counts=False, fresh_asset=True, now=now, rng=rng, backoffs=backoffs)


def _retry(
    rec: FileRecord,
    why: str,
    *,
    counts: bool,
    fresh_asset: bool,
    now: float,
    rng: random.Random,
    backoffs: Backoffs,
) -> Outcome:
    attempts = rec.attempts + 1
    # Only failures of the server count towards giving up: twenty offline retries must
    # not leave a file one 503 away from `failed`.
    failures = rec.server_failures + 1 if counts else rec.server_failures
    if counts and failures >= MAX_SERVER_FAILURES:
        return failed(
            f"gave up after {failures} server failures: {why}",
            attempts=attempts,
            server_failures=failures,
            last_error=why,
        )
    delay = backoffs.upload.delay(failures if counts else attempts, rng)
    return move(
        State.QUEUED,
        f"{why}; retry in {delay:.0f}s",
        delay=delay,
        attempts=attempts,
        server_failures=failures,
        last_error=why,
        next_attempt_at=now + delay,
        **(NO_ASSET if fresh_asset else {}),
    )


# ---- confirmation -------------------------------------------------------------------------


def accepted(
    rec: FileRecord, why: str, *, now: float, first_check_in: float | None = None, **fields: Any
) -> Outcome:
    """Storage took a complete upload of `rec` (or had it before a stop): count it. MAVI is
    asked `first_check_in` seconds from now, by whoever claims the poll; None: at once, by
    the worker holding it."""
    if first_check_in is not None:
        fields = {**fields, **RELEASE_LEASE, "next_attempt_at": now + first_check_in}
    return move(
        State.CONFIRMING, why, sends=rec.sends + 1, accepted_at=now, mavi_status=None,
        mavi_status_since=None, confirm_polls=0, **{"next_attempt_at": None, **fields},
    )  # fmt: skip


def poll_later(
    rec: FileRecord,
    why: str,
    *,
    now: float,
    rng: random.Random,
    mavi_status: str | None = None,
    backoffs: Backoffs = DEFAULT_BACKOFFS,
) -> Outcome:
    """Confirmation not there yet: free the row and look again after a backoff.

    With `mavi_status` (MAVI answered), the answer is kept with the time it was first given,
    and a change of answer is an event; otherwise `why` is the error of the poll.
    """
    polls = rec.confirm_polls + 1
    delay = backoffs.confirm.delay(polls, rng)
    fields: dict[str, Any] = {
        "confirm_polls": polls,
        "last_error": None if mavi_status else why,
        "next_attempt_at": now + delay,
        **RELEASE_LEASE,
    }
    if mavi_status is None or mavi_status == rec.mavi_status:
        return stay(why, delay=delay, **fields)
    fields.update(mavi_status=mavi_status, mavi_status_since=now)
    return Outcome(State.CONFIRMING, why, MappingProxyType(fields), delay)


def follow(
    rec: FileRecord,
    judgement: Judgement,
    mavi_status: str | None,
    *,
    now: float,
    rng: random.Random,
    owed: Owed,
    backoffs: Backoffs = DEFAULT_BACKOFFS,
) -> Outcome:
    """What a judgement of MAVI's answer (`decisions.judge`) makes of a confirming row."""
    if judgement.verdict is Verdict.DONE:
        return finished(State.DONE, judgement.reason, owed=owed)
    if judgement.verdict is Verdict.CONFIRM:
        return poll_later(
            rec, judgement.reason, now=now, rng=rng, mavi_status=mavi_status, backoffs=backoffs
        )
    if judgement.verdict is Verdict.FAIL:
        return failed(judgement.reason)
    return upload_again(rec, judgement.reason, now=now, rng=rng, backoffs=backoffs)


# ---- sending ------------------------------------------------------------------------------


def signed(asset_id: str, url: str, expires_at: float) -> Outcome:
    """A new asset, journaled before any byte moves (a crash then reuses it)."""
    return move(
        State.UPLOADING, f"signed: asset {asset_id}", asset_id=asset_id, signed_url=url,
        url_expires_at=expires_at,
    )  # fmt: skip


def send_to_same_asset(why: str) -> Outcome:
    """The resume check found the journaled asset without our bytes: send them to it."""
    return move(State.UPLOADING, f"{why}; sending")


def forget_asset(why: str) -> Outcome:
    """This asset will never hold our bytes: the next send signs a new one."""
    return stay(why, **NO_ASSET)


# ---- dedupe: a twin has the same content ---------------------------------------------------


def wait_for_twin(twin: FileRecord, sha256: str) -> Outcome:
    """Parked: no worker claims it until the twin leaves flight (journal reads: PARKED)."""
    why = f"same content as #{twin.id}, in flight; waiting for it"
    return move(State.QUEUED, why, sha256=sha256, next_attempt_at=None)


def content_spent(twin: FileRecord, sha256: str) -> Outcome:
    why = (
        f"same content as #{twin.id}, which MAVI did not take after {twin.sends}"
        f" complete uploads; `retry {twin.id}` to try that content again"
    )
    return failed(why, sha256=sha256)


def duplicate(twin: FileRecord, sha256: str, *, owed: Owed) -> Outcome:
    why = f"same content as #{twin.id} ({display_path(twin.path)}), asset {twin.asset_id}"
    return finished(
        State.DUPLICATE, why, owed=owed, sha256=sha256, duplicate_of=twin.id,
        asset_id=twin.asset_id,
    )  # fmt: skip
