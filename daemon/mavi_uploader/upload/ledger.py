"""A worker's writes to the journal: each outcome (`core.outcomes`) applied in one call.

What to write is decided in `core.outcomes` (pure); the ledger writes it under the worker's
lease and says whether the row was still the worker's. Besides outcomes it takes notes
that decide nothing: progress, lease renewal, a hash.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mavi_uploader.core.outcomes import Outcome
from mavi_uploader.core.records import FileRecord, display_path
from mavi_uploader.journal import JournalStore as Journal
from mavi_uploader.log import get_logger

log = get_logger(__name__)


class Ledger:
    """Journal writes made under one worker's lease (`owner`)."""

    def __init__(self, journal: Journal, owner: str) -> None:
        self.journal = journal
        self.owner = owner

    def apply(self, rec: FileRecord, outcome: Outcome) -> FileRecord | None:
        """Write `outcome` for `rec` (one transaction, with its event if it moves the row);
        the row as written, or None when it is no longer ours (a lost lease, `retry`...)."""
        fields = dict(outcome.fields)
        if outcome.state is None:
            if not self.journal.update(rec.id, owner=self.owner, **fields):
                log.warning("lost the claim", file_id=rec.id)
                return None
            # `update` returns no row: the one we had, with what we wrote.
            return dataclasses.replace(rec, **fields)
        moved = self.journal.transition(
            rec.id, outcome.state, outcome.reason, owner=self.owner, **fields
        )
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
        return self.journal.update(rec.id, owner=self.owner, **fields)
