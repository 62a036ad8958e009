"""The fleet's journal on PostgreSQL (needs the `postgres` extra: psycopg 3, psycopg_pool)."""

from __future__ import annotations

from collections.abc import Callable

from mavi_uploader.journal.api import Fleet, JournalError, JournalStore
from mavi_uploader.journal.postgres.connection import Database, DatabaseClock, shown_url
from mavi_uploader.journal.postgres.fleet import HostLock
from mavi_uploader.journal.postgres.places import Places
from mavi_uploader.journal.postgres.schema import SCHEMA_VERSION, migrate, schema_version
from mavi_uploader.journal.postgres.slots import DatabaseSlots
from mavi_uploader.journal.postgres.store import PostgresJournal

# Connections per host: workers, settle, watcher, rescans, the supervisor and commands.
POOL_SIZE = 12


def open_fleet_journal(
    fleet: Fleet,
    *,
    clock: Callable[[], float] | None = None,
    migrate_schema: bool = True,
    pool_size: int = POOL_SIZE,
) -> JournalStore:
    """This host's working view of the fleet's journal, created and migrated if need be;
    with migrate_schema=False (a daemon runs) any schema but this build's is refused."""
    db = Database(fleet.url, max_size=pool_size, timeout=fleet.wait)
    try:
        with db.errors(), db.pool.connection() as conn:
            db_clock = DatabaseClock()
            db_clock.sync(conn)
            if migrate_schema:
                migrate(conn, db.shown)
            elif (version := schema_version(conn)) != SCHEMA_VERSION:
                raise JournalError(
                    f"journal_url {db.shown}: the fleet's journal has schema v{version} and"
                    f" this mavi-uploader v{SCHEMA_VERSION}; restart a daemon with this"
                    " version (it upgrades the journal), then try again"
                )
    except BaseException:
        db.close()
        raise
    places = Places(fleet.host_id, fleet.shares)
    return PostgresJournal(
        db, places, clock or db_clock, host_timeout=fleet.host_timeout, working=True
    )


def open_fleet_reader(fleet: Fleet) -> JournalStore | None:
    """The whole fleet's journal for reports; None before any daemon created it."""
    db = Database(fleet.url, max_size=2, timeout=fleet.wait)
    try:
        with db.errors(), db.pool.connection() as conn:
            db_clock = DatabaseClock()
            db_clock.sync(conn)
            if schema_version(conn) == 0:
                db.close()
                return None
    except BaseException:
        db.close()
        raise
    places = Places(fleet.host_id, fleet.shares)
    return PostgresJournal(db, places, db_clock, host_timeout=fleet.host_timeout, working=False)


def fleet_slots(journal: JournalStore) -> DatabaseSlots:
    """The account's rate slots in the fleet's journal, shared by every host (they close
    with the journal)."""
    if not isinstance(journal, PostgresJournal):
        raise TypeError(f"rate slots live in the fleet's journal, not in {journal.kind}")
    return journal.rate_slots


def lock_host(fleet: Fleet) -> HostLock:
    """Hold this host's id in the fleet (HostTaken if a live daemon already does)."""
    lock = HostLock(fleet.url, shown_url(fleet.url), fleet.host_id, timeout=fleet.wait)
    lock.acquire()
    return lock


__all__ = [
    "DatabaseSlots",
    "HostLock",
    "fleet_slots",
    "lock_host",
    "open_fleet_journal",
    "open_fleet_reader",
]
