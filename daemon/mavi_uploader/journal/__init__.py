"""The journal: one interface (`JournalStore`, `JournalError`) and the factories that open a
store. Code outside this package uses only these names, never a store's module.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from mavi_uploader.journal.api import (
    ContentClaim,
    Fleet,
    IllegalTransition,
    JournalError,
    JournalStore,
    check_transition,
)
from mavi_uploader.journal.sqlite.store import Journal as SQLiteJournal


def make_state_dir(state_dir: Path) -> None:
    """Create `state_dir` (0700) if missing; JournalError with the fix if we cannot."""
    SQLiteJournal.make_state_dir(state_dir)


def open_journal(
    state_dir: Path, *, clock: Callable[[], float] = time.time, migrate_schema: bool = True
) -> JournalStore:
    """The journal for writing, created and migrated if need be; with migrate_schema=False
    (a running daemon holds it) any schema but this build's is refused with the fix."""
    return SQLiteJournal.open(state_dir, clock=clock, migrate_schema=migrate_schema)


def open_for_reports(state_dir: Path) -> JournalStore | None:
    """A read-only view for `status`, `list`, `history`; None when there is no journal yet."""
    return SQLiteJournal.open_existing(state_dir)


__all__ = [
    "ContentClaim",
    "Fleet",
    "IllegalTransition",
    "JournalError",
    "JournalStore",
    "check_transition",
    "make_state_dir",
    "open_for_reports",
    "open_journal",
]
