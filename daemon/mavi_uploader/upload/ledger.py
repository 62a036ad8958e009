"""A worker's moves in the journal: each decision (retry, give up, poll later...) as one call.

Owns the retry policy's application: attempts and next_attempt_at live in the row.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import Any

from mavi_uploader.core.records import (
    NEW_VERSION,
    NO_ASSET,
    SETTLED_FOR_GOOD,
    SPENT_URL,
    FileRecord,
    State,
    display_path,
)
from mavi_uploader.core.retry import CONFIRM_BACKOFF, MAX_SERVER_FAILURES, UPLOAD_BACKOFF
from mavi_uploader.journal import JournalStore as Journal
from mavi_uploader.log import get_logger

log = get_logger(__name__)


class Ledger:
    """Journal moves made under one worker's lease (`owner`)."""

    def __init__(
        self,
        journal: Journal,
        owner: str,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.journal = journal
        self.owner = owner
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not crypto

    def move(self, rec: FileRecord, new: State, why: str, **fields: Any) -> FileRecord | None:
        """Transition under our lease; leaving the in-flight states drops the lease."""
        if new not in (State.UPLOADING, State.CONFIRMING):
            fields.setdefault("lease_owner", None)
            fields.setdefault("lease_expires_at", None)
        if new in SETTLED_FOR_GOOD:
            fields.update(SPENT_URL)
        moved = self.journal.transition(rec.id, new, why, owner=self.owner, **fields)
        if moved is None:
            log.warning("lost the claim", file_id=rec.id, wanted=new.value)
        else:
            log.info(
                "transition",
                file_id=rec.id,
                path=display_path(rec.path),
                state=new.value,
                reason=why,
            )
        return moved

    def note(self, rec: FileRecord, **fields: Any) -> bool:
        """Bookkeeping under our lease, no state change (hash, progress, lease renewal).

        False when the row is no longer ours (our lease expired and another worker took it).
        """
        return self.journal.update(rec.id, owner=self.owner, **fields)

    def release(self, rec: FileRecord, why: str) -> None:
        """Give the row back without counting an attempt (stop, pause)."""
        current = self.journal.get(rec.id)
        if current is None or current.lease_owner != self.owner:
            return
        if current.state is State.UPLOADING:
            self.move(current, State.QUEUED, why, next_attempt_at=None)
        else:
            self.note(rec, lease_owner=None, lease_expires_at=None)

    def poll_later(self, rec: FileRecord, why: str, *, mavi_status: str | None = None) -> None:
        """Confirmation not there yet: free the row and look again after a backoff.

        With `mavi_status` (MAVI answered), the answer is kept with the time it was first
        given, and a change of answer is an event; otherwise `why` is the error of the poll.
        """
        polls = rec.confirm_polls + 1
        fields: dict[str, Any] = {
            "confirm_polls": polls,
            "last_error": None if mavi_status else why,
            "next_attempt_at": self._clock() + CONFIRM_BACKOFF.delay(polls, self._rng),
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if mavi_status is None or mavi_status == rec.mavi_status:
            self.note(rec, **fields)
            return
        fields.update(mavi_status=mavi_status, mavi_status_since=self._clock())
        self.journal.transition(rec.id, State.CONFIRMING, why, owner=self.owner, **fields)

    def upload_again(self, rec: FileRecord, why: str) -> None:
        """MAVI will not confirm this asset: sign and send the whole file again (the caller
        has checked the cap on complete sends; failures of the server count elsewhere)."""
        self._retry(rec, why, counts=False, fresh_asset=True)

    def retry_later(self, rec: FileRecord, why: str, *, counts: bool = True) -> None:
        """A failed step: back to queued after a backoff (same asset), or failed if spent.

        `counts=False` for failures a person or the network fixes (unreadable file, offline):
        they never make a file `failed`.
        """
        current = self.journal.get(rec.id) or rec
        if current.state is State.CONFIRMING:
            self.poll_later(current, why)
            return
        self._retry(current, why, counts=counts, fresh_asset=False)

    def _retry(self, rec: FileRecord, why: str, *, counts: bool, fresh_asset: bool) -> None:
        attempts = rec.attempts + 1
        # Only failures of the server count towards giving up: twenty offline retries must
        # not leave a file one 503 away from `failed`.
        failures = rec.server_failures + 1 if counts else rec.server_failures
        if counts and failures >= MAX_SERVER_FAILURES:
            self.move(
                rec,
                State.FAILED,
                f"gave up after {failures} server failures: {why}",
                attempts=attempts,
                server_failures=failures,
                last_error=why,
            )
            return
        delay = UPLOAD_BACKOFF.delay(failures if counts else attempts, self._rng)
        self.move(
            rec,
            State.QUEUED,
            f"{why}; retry in {delay:.0f}s",
            attempts=attempts,
            server_failures=failures,
            last_error=why,
            next_attempt_at=self._clock() + delay,
            **(NO_ASSET if fresh_asset else {}),
        )

    def back_to_settling(self, rec: FileRecord, why: str, **fields: Any) -> None:
        """The file changed under us (or is still being written): settle again, forget hash
        and asset."""
        try:
            st = os.stat(rec.path)
        except FileNotFoundError:
            self.move(rec, State.VANISHED, f"{why}; then it disappeared")
            return
        self.move(
            rec,
            State.SETTLING,
            why,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            stable_since=self._clock(),
            **NEW_VERSION,
            **fields,
        )
