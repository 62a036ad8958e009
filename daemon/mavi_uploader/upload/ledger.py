"""A worker's writes to the journal: each outcome (`core.outcomes`) applied in one call.

What to write is decided in `core.outcomes` (pure); the ledger writes it under the worker's
lease and says whether the row was still the worker's. Besides outcomes it takes notes
that decide nothing: progress, lease renewal, a hash.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

from mavi_uploader.core.outcomes import Outcome
from mavi_uploader.core.records import FileRecord, display_path
from mavi_uploader.journal import JournalError
from mavi_uploader.journal import JournalStore as Journal
from mavi_uploader.log import get_logger

log = get_logger(__name__)
# Waits between attempts to write an outcome while a fleet's journal is away.
_FIRST_WAIT, _LAST_WAIT = 0.5, 10.0


class Ledger:
    """Journal writes made under one worker's lease (`owner`).

    On a fleet's journal (PostgreSQL) a write that fails because the server is away is tried
    again until it lands or the daemon stops: the server comes back, and an upload's outcome
    (storage took the bytes) is worth waiting for, not a reason to send them again. A note
    (progress, lease renewal) that cannot be written is skipped: the bytes keep moving.
    """

    def __init__(self, journal: Journal, owner: str, stop: threading.Event | None = None) -> None:
        self.journal = journal
        self.owner = owner
        self._stop = stop or threading.Event()
        self._patient = journal.kind != "sqlite"  # a local journal's errors are not outages
        lapse = journal.claims_lapse_after
        # Out of touch this long, a worker stops sending: its claim may be another host's by
        # then, and bytes sent after that would be a second upload of the file.
        self._fence = lapse * 2 / 3 if lapse is not None else None
        self._last_touch = time.monotonic()
        self.out_of_touch = False

    def apply(self, rec: FileRecord, outcome: Outcome) -> FileRecord | None:
        """Write `outcome` for `rec` (one transaction, with its event if it moves the row);
        the row as written, or None when it is no longer ours (a lost lease, `retry`...)."""
        if not self._patient:
            return self._apply(rec, outcome)
        delay = _FIRST_WAIT
        while True:
            try:
                written = self._apply(rec, outcome)
            except JournalError as exc:
                log.warning(
                    "journal unavailable; will write the outcome when it is back",
                    file_id=rec.id,
                    error=str(exc),
                    retry_in_s=delay,
                )
                if self._stop.wait(delay):
                    raise  # the crash rule picks the file up at the next start
                delay = min(_LAST_WAIT, delay * 2)
                continue
            self._last_touch = time.monotonic()
            return written

    def _apply(self, rec: FileRecord, outcome: Outcome) -> FileRecord | None:
        fields = dict(outcome.fields)
        if outcome.state is None:
            if not self.journal.update(rec.id, owner=self.owner, **fields):
                log.warning("lost the claim", file_id=rec.id)
                return None
            # `update` returns no row: the one we had, with what we wrote.
            return dataclasses.replace(rec, **fields)
        moved = self.journal.transition(
            rec.id, outcome.state, outcome.reason, owner=self.owner, handoffs=outcome.handoffs,
            **fields,
        )  # fmt: skip
        if moved is None:
            log.warning("lost the claim", file_id=rec.id, wanted=outcome.state.value)
        else:
            log.info(
                "transition",
                file_id=rec.id,
                path=display_path(rec.path),
                state=outcome.state.value,
                reason=outcome.reason,
            )
        return moved

    def note(self, rec: FileRecord, **fields: Any) -> bool:
        """Bookkeeping under our lease, no decision (progress, lease renewal, the hash).

        False when the row is no longer ours (our lease expired and another worker took it).
        """
        try:
            ours = self.journal.update(rec.id, owner=self.owner, **fields)
        except JournalError as exc:
            if not self._patient:
                raise
            silent_for = time.monotonic() - self._last_touch
            if self._fence is not None and silent_for >= self._fence:
                log.warning(
                    "out of touch with the journal; stopping this upload (another host may"
                    " take the file)",
                    file_id=rec.id,
                    silent_s=round(silent_for, 1),
                    error=str(exc),
                )
                self.out_of_touch = True
                return False
            log.warning(
                "journal unavailable; progress not recorded", file_id=rec.id, error=str(exc)
            )
            return True  # as far as we know the row is ours: carry on
        self._last_touch = time.monotonic()
        self.out_of_touch = False
        return ours
