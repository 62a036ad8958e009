"""The SQLite journal: file rows, their state transitions and the append-only events log.

Every state change is one `BEGIN IMMEDIATE` transaction that updates the row and appends an
event, so the journal can always explain how a file got where it is. Nothing else writes SQL.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from mavi_uploader.config.model import UploadOrder
from mavi_uploader.core.handoffs import HandoffKind
from mavi_uploader.core.records import FileRecord, HostInfo
from mavi_uploader.core.states import RELEASE_LEASE, State
from mavi_uploader.journal.api import JournalError, Work, check_transition
from mavi_uploader.journal.boundary import wraps_driver_errors
from mavi_uploader.journal.sql import ORDER_PATIENCE, PARKED, claim_order, claimable, one
from mavi_uploader.journal.sqlite.dedupe import JournalDedupe
from mavi_uploader.journal.sqlite.handoffs import JournalHandoffs
from mavi_uploader.journal.sqlite.reads import JournalReads, to_record
from mavi_uploader.journal.sqlite.retention import JournalRetention
from mavi_uploader.journal.sqlite.schema import (
    SCHEMA_VERSION,
    ConnectionPool,
    create_private_file,
    driver_errors,
    migrate,
)
from mavi_uploader.journal.sqlite.sightings import JournalSightings

DB_NAME = "journal.sqlite3"
Clock = Callable[[], float]

# Columns a transition may set besides state; guards against typos turning into SQL.
# fmt: off
_WRITABLE = frozenset({
    "size", "mtime_ns", "stable_since", "sha256", "asset_id", "signed_url", "url_expires_at",
    "duplicate_of", "attempts", "next_attempt_at", "confirm_polls", "last_error",
    "lease_owner", "lease_expires_at", "bytes_sent", "upload_started_at", "progress_at",
    "after_upload_due", "server_failures", "sends", "accepted_at", "mavi_status",
    "mavi_status_since", "content_claimed",
})
# fmt: on


@wraps_driver_errors
class Journal(JournalSightings, JournalDedupe, JournalRetention, JournalHandoffs, JournalReads):
    """Thread-safe access to one journal database (one connection per thread); the SQLite
    `JournalStore` (mavi_uploader.journal.api)."""

    kind = "sqlite"
    claims_lapse_after: float | None = None

    def __init__(
        self,
        db_path: Path,
        *,
        clock: Clock = time.time,
        read_only: bool = False,
        migrate_schema: bool = True,
    ):
        self.db_path = db_path
        self._clock = clock
        self._db = ConnectionPool(db_path, read_only=read_only)
        if read_only:
            return
        if migrate_schema:
            migrate(self._db.get(), db_path)
            return
        version = self._db.user_version()
        if version != SCHEMA_VERSION:
            self.close()
            raise JournalError(
                f"{db_path}: the running daemon uses journal schema v{version} and this"
                f" mavi-uploader v{SCHEMA_VERSION}; restart the daemon with this version"
                " (it upgrades the journal), then try again"
            )

    @staticmethod
    def make_state_dir(state_dir: Path) -> None:
        """Create `state_dir` (0700) if missing; JournalError with the fix if we cannot."""
        try:
            state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise _cannot_create(state_dir, exc) from exc

    @classmethod
    def open(
        cls, state_dir: Path, *, clock: Clock = time.time, migrate_schema: bool = True
    ) -> Journal:
        """Open (creating 0700 dir / 0600 file if needed) the journal, migrating it; with
        migrate_schema=False (a daemon holds it) refuse any schema but this build's."""
        cls.make_state_dir(state_dir)
        db_path = state_dir / DB_NAME
        try:
            create_private_file(db_path)
        except OSError as exc:
            raise _cannot_create(state_dir, exc) from exc
        return cls(db_path, clock=clock, migrate_schema=migrate_schema)

    @classmethod
    def open_existing(cls, state_dir: Path) -> Journal | None:
        """Read-only view for the CLI's reports; None when there is no journal yet."""
        db_path = state_dir / DB_NAME
        if not db_path.exists():
            return None
        journal = cls(db_path, read_only=True)
        # The daemon creates the file a moment before its first migration commits the tables.
        if journal._db.user_version() == 0:
            journal.close()
            return None
        return journal

    def _conn(self) -> sqlite3.Connection:
        return self._db.get()

    def _driver_errors(self) -> contextlib.AbstractContextManager[None]:
        return driver_errors(self.db_path)

    def now(self) -> float:
        """The journal's clock (injectable in tests), for ages compared with its times."""
        return self._clock()

    def close(self) -> None:
        self._db.close()

    def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return self._db.transaction()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group the transitions made inside into one transaction (all or none)."""
        # The commit runs as the block ends, outside any store method: wrapped here.
        with driver_errors(self.db_path), self._db.transaction():
            yield

    def _event(
        self, conn: sqlite3.Connection, file_id: int, old: State | None, new: State, why: str
    ) -> None:
        conn.execute(
            "INSERT INTO events (file_id, at, from_state, to_state, reason) VALUES (?,?,?,?,?)",
            (file_id, self._clock(), old.value if old else None, new.value, why),
        )

    # ---- transitions -----------------------------------------------------------------

    def _move(
        self,
        conn: sqlite3.Connection,
        file_id: int,
        old: State | Sequence[State] | None,
        new: State,
        why: str,
        fields: dict[str, Any],
        owner: str | None = None,
        handoffs: Sequence[HandoffKind] = (),
    ) -> FileRecord | None:
        unknown = set(fields) - _WRITABLE
        if unknown:
            raise ValueError(f"not writable by a transition: {sorted(unknown)}")
        where = "id = ?"
        guard: list[Any] = [file_id]
        if old is not None:
            olds = [old] if isinstance(old, State) else list(old)
            where += f" AND state IN ({','.join('?' * len(olds))})"
            guard.extend(s.value for s in olds)
        if owner is not None:
            where += " AND lease_owner = ?"
            guard.append(owner)
        # The caller's transaction holds the write lock: the row cannot change in between.
        before = conn.execute(f"SELECT state FROM files WHERE {where}", guard).fetchone()
        if before is None:
            return None  # the guard did not match: someone else moved the row first
        from_state = State(before["state"])
        check_transition(file_id, from_state, new)  # the one place a state is rewritten
        sets = ", ".join([*(f"{k} = ?" for k in fields), "state = ?", "updated_at = ?"])
        args: list[Any] = [*fields.values(), new.value, self._clock(), *guard]
        row = conn.execute(f"UPDATE files SET {sets} WHERE {where} RETURNING *", args).fetchone()
        assert row is not None  # selected under the same lock
        if from_state != new or why:
            self._event(conn, file_id, from_state, new, why)
        if handoffs:
            self._owe_handoffs(conn, file_id, new, handoffs)
        return to_record(row)

    def transition(
        self,
        file_id: int,
        new: State,
        why: str,
        *,
        expect: State | Sequence[State] | None = None,
        owner: str | None = None,
        handoffs: Sequence[HandoffKind] = (),
        **fields: Any,
    ) -> FileRecord | None:
        """Move a file to `new` (if it is in `expect` and leased by `owner`), with an event,
        and owe its `handoffs` in the same transaction.

        Returns the updated record, or None when the guard did not match (someone else moved
        the row first, e.g. `retry` from the CLI or a lost lease).
        """
        with self._tx() as conn:
            return self._move(conn, file_id, expect, new, why, fields, owner, handoffs)

    def update(self, file_id: int, *, owner: str | None = None, **fields: Any) -> bool:
        """Change bookkeeping columns without a state change (no event)."""
        unknown = set(fields) - _WRITABLE
        if unknown:
            raise ValueError(f"not writable: {sorted(unknown)}")
        sets = ", ".join([*(f"{k} = ?" for k in fields), "updated_at = ?"])
        args: list[Any] = [*fields.values(), self._clock(), file_id]
        where = "id = ?"
        if owner is not None:
            where += " AND lease_owner = ?"
            args.append(owner)
        with self._tx() as conn:
            cur = conn.execute(f"UPDATE files SET {sets} WHERE {where}", args)
            return cur.rowcount == 1

    # ---- workers ---------------------------------------------------------------------

    def claim(
        self,
        owner: str,
        lease_seconds: float,
        *,
        order: UploadOrder = UploadOrder.FIFO,
        work: Work = Work.ANY,
    ) -> FileRecord | None:
        """Atomically take the next due file, in `order` (sql.claim_order): queued
        (-> uploading), confirming, or an in-flight one whose lease expired (its worker died
        or hung without renewing)."""
        now = self._clock()
        with self._tx() as conn:
            row = conn.execute(
                "SELECT id, state, lease_owner FROM files WHERE"
                f" {claimable(work, now=':now', parked=PARKED, lapsed='lease_expires_at < :now')}"
                f" {claim_order(order, ':overdue')} LIMIT 1",
                {"now": now, "overdue": now - ORDER_PATIENCE},
            ).fetchone()
            if row is None:
                return None
            old = State(row["state"])
            new = State.UPLOADING if old is State.QUEUED else old
            if row["lease_owner"] is not None:
                why = f"lease of {row['lease_owner']} expired; reclaimed by {owner}"
            elif old is State.QUEUED:
                why = f"claimed by {owner}"
            else:
                why = ""  # a routine confirmation poll: not worth an event
            fields: dict[str, Any] = {"lease_owner": owner, "lease_expires_at": now + lease_seconds}
            record = self._move(conn, row["id"], old, new, why, fields)
            assert record is not None  # we hold the write lock since the SELECT
            return record

    def recover_after_crash(self) -> int:
        """Crash rule, run at start while holding the state-dir lock (so no owner is alive).

        `uploading` rows go back to `queued` (their unexpired signed URL is kept for reuse);
        `confirming` rows lose their lease and resume polling; hand-offs lose theirs (due
        again at once: a hook cut off by the stop runs again, at-least-once).
        """
        with self._tx() as conn:
            self._release_handoff_leases(conn)
            rows = conn.execute(
                "SELECT id, state FROM files"
                f" WHERE state = {one(State.UPLOADING)} OR lease_owner IS NOT NULL"
            ).fetchall()
            for row in rows:
                if row["state"] == State.UPLOADING.value:
                    self._move(
                        conn,
                        row["id"],
                        State.UPLOADING,
                        State.QUEUED,
                        "daemon stopped during upload; will resume",
                        {**RELEASE_LEASE, "next_attempt_at": None},
                    )
                else:
                    conn.execute(
                        "UPDATE files SET lease_owner = NULL, lease_expires_at = NULL WHERE id = ?",
                        (row["id"],),
                    )
        return len(rows)

    # ---- pause -----------------------------------------------------------------------

    def set_pause(self, reason: str) -> None:
        with self._tx() as conn:
            if conn.execute("SELECT 1 FROM daemon_flags WHERE key = 'pause_reason'").fetchone():
                conn.execute(
                    "UPDATE daemon_flags SET value = ? WHERE key = 'pause_reason'", (reason,)
                )
                return
            conn.executemany(
                "INSERT INTO daemon_flags (key, value) VALUES (?, ?)",
                [("pause_reason", reason), ("pause_since", repr(self._clock()))],
            )

    def clear_pause(self) -> None:
        with self._tx() as conn:
            conn.execute(
                "DELETE FROM daemon_flags"
                " WHERE key IN ('pause_reason', 'pause_since', 'pause_next_probe')"
            )

    def take_pause_probe(self, interval: float) -> bool:
        now = self._clock()
        with self._tx() as conn:
            row = conn.execute(
                "SELECT value FROM daemon_flags WHERE key = 'pause_next_probe'"
            ).fetchone()
            if row is not None and float(row["value"]) > now:
                return False
            conn.execute(
                "INSERT INTO daemon_flags (key, value) VALUES ('pause_next_probe', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (repr(now + interval),),
            )
            return True

    # ---- the fleet: one daemon per state dir (its lock), no one to share with -----------

    def heartbeat(self, pid: int) -> None:
        return None

    def hosts(self) -> list[HostInfo]:
        return []

    def on_new_work(self, wake: Callable[[], None]) -> None:
        return None  # the one daemon's own settle loop wakes its workers


def _cannot_create(state_dir: Path, exc: OSError) -> JournalError:
    return JournalError(
        f"{state_dir}: cannot create the state directory or journal ({exc.strerror}); "
        "fix its permissions or set MAVI_UPLOADER_STATE_DIR"
    )


__all__ = ["DB_NAME", "Journal"]
