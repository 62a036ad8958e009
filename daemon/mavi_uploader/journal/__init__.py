"""The journal: one interface (`JournalStore`, `JournalError`) and the factories that open a
store. Code outside this package uses only these names, never a store's module.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mavi_uploader.journal.api import (
    ContentClaim,
    Fleet,
    HostTaken,
    IllegalTransition,
    JournalError,
    JournalSettingError,
    JournalStore,
    SizeClaim,
    Work,
    check_transition,
)
from mavi_uploader.journal.sqlite.store import Journal as SQLiteJournal

if TYPE_CHECKING:
    from mavi_uploader.journal.postgres.fleet import HostLock
    from mavi_uploader.journal.postgres.slots import DatabaseSlots


def make_state_dir(state_dir: Path) -> None:
    """Create `state_dir` (0700) if missing; JournalError with the fix if we cannot."""
    SQLiteJournal.make_state_dir(state_dir)


def open_journal(
    state_dir: Path,
    *,
    fleet: Fleet | None = None,
    clock: Callable[[], float] | None = None,
    migrate_schema: bool = True,
) -> JournalStore:
    """The journal for writing (SQLite in `state_dir`, or the fleet's on PostgreSQL),
    created and migrated if need be; with migrate_schema=False (a running daemon holds it)
    any schema but this build's is refused with the fix. `clock`: tests only (the fleet's
    default is the database's clock)."""
    if fleet is not None:
        with _postgres_driver():
            from mavi_uploader.journal.postgres import open_fleet_journal  # noqa: PLC0415
        return open_fleet_journal(fleet, clock=clock, migrate_schema=migrate_schema)
    return SQLiteJournal.open(state_dir, clock=clock or time.time, migrate_schema=migrate_schema)


def open_for_reports(state_dir: Path, fleet: Fleet | None = None) -> JournalStore | None:
    """A read-only view for `status`, `list`, `history`; None when there is no journal yet
    (in fleet mode: the whole fleet's)."""
    if fleet is not None:
        with _postgres_driver():
            from mavi_uploader.journal.postgres import open_fleet_reader  # noqa: PLC0415
        return open_fleet_reader(fleet)
    return SQLiteJournal.open_existing(state_dir)


def lock_host(fleet: Fleet) -> HostLock:
    """Hold this host's id in the fleet while the daemon runs (HostTaken if taken)."""
    with _postgres_driver():
        from mavi_uploader.journal.postgres import lock_host as take  # noqa: PLC0415
    return take(fleet)


def shared_rate_slots(journal: JournalStore) -> DatabaseSlots | None:
    """The fleet's account-wide rate slots (a RateLimiter's `slots`); None on SQLite, whose
    daemon is the account's only user and keeps its slots in process."""
    if journal.kind != "postgresql":
        return None
    with _postgres_driver():
        from mavi_uploader.journal.postgres import fleet_slots  # noqa: PLC0415
    return fleet_slots(journal)


@contextlib.contextmanager
def _postgres_driver() -> Iterator[None]:
    """The PostgreSQL store is imported only in fleet mode: its driver is an extra."""
    try:
        yield
    except ImportError as exc:
        raise JournalSettingError(
            f"journal_url is set but the PostgreSQL driver is missing ({exc}); install it with"
            " pip install 'mavi-uploader[postgres]', or remove journal_url to use SQLite"
        ) from exc


__all__ = [
    "ContentClaim",
    "Fleet",
    "HostTaken",
    "IllegalTransition",
    "JournalError",
    "JournalSettingError",
    "JournalStore",
    "SizeClaim",
    "Work",
    "check_transition",
    "lock_host",
    "make_state_dir",
    "open_for_reports",
    "open_journal",
    "shared_rate_slots",
]
