"""SQLite schema, migrations (PRAGMA user_version) and connection settings for the journal."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from mavi_uploader.core.states import ACTIVE_STATES, FINAL_STATES, State
from mavi_uploader.journal.api import JournalError
from mavi_uploader.journal.sql import among, one

SCHEMA_VERSION = 5


# Generated from the enum, byte for byte the text journals in the field were created with
# (tests/test_journal.py pins it): a new state needs a migration, not an edit here.
_ACTIVE = among(ACTIVE_STATES)
_STATES = among(State)

_MIGRATIONS: dict[int, str] = {
    1: f"""
    CREATE TABLE files (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        path             BLOB    NOT NULL,
        watch_root       BLOB,
        state            TEXT    NOT NULL CHECK (state IN {_STATES}),
        size             INTEGER,
        mtime_ns         INTEGER,
        stable_since     REAL,
        sha256           TEXT,
        asset_id         TEXT,
        signed_url       TEXT,
        url_expires_at   REAL,
        duplicate_of     INTEGER REFERENCES files(id),
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  REAL,
        confirm_polls    INTEGER NOT NULL DEFAULT 0,
        last_error       TEXT,
        lease_owner      TEXT,
        lease_expires_at REAL,
        bytes_sent       INTEGER NOT NULL DEFAULT 0,
        created_at       REAL    NOT NULL,
        updated_at       REAL    NOT NULL
    );
    -- One live row per path; a path re-written after it finished becomes a new row.
    CREATE UNIQUE INDEX files_one_active_per_path ON files(path) WHERE state IN {_ACTIVE};
    CREATE INDEX files_path ON files(path, id);
    CREATE INDEX files_due ON files(state, next_attempt_at);
    CREATE INDEX files_sha256 ON files(sha256) WHERE sha256 IS NOT NULL;
    CREATE TABLE events (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        file_id    INTEGER NOT NULL REFERENCES files(id),
        at         REAL    NOT NULL,
        from_state TEXT,
        to_state   TEXT    NOT NULL,
        reason     TEXT    NOT NULL DEFAULT ''
    );
    CREATE INDEX events_by_file ON events(file_id, id);
    CREATE TABLE daemon_flags (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # v2: upload progress for `status` (speed, ETA) and an index for journal retention.
    2: """
    ALTER TABLE files ADD COLUMN upload_started_at REAL;
    ALTER TABLE files ADD COLUMN progress_at REAL;
    CREATE INDEX files_by_age ON files(state, updated_at);
    """,
    # v3: after_upload (move/delete) still owed for a finished file: set in the same commit
    # as `done`, cleared when done, so a crash in between is finished on the next start.
    3: """
    ALTER TABLE files ADD COLUMN after_upload_due INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX files_after_upload_due ON files(id) WHERE after_upload_due = 1;
    """,
    # v4: server failures counted apart from network ones (only they make a file `failed`);
    # the row that claimed its content for upload in its current claim (dedupe);
    # complete sends storage accepted and when the last was accepted (late confirmations are
    # waited for, re-sends are capped); what MAVI last reported and since when. A finished
    # file's signed URL is a credential with no further use: forgotten.
    4: f"""
    ALTER TABLE files ADD COLUMN server_failures INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE files ADD COLUMN sends INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE files ADD COLUMN accepted_at REAL;
    ALTER TABLE files ADD COLUMN mavi_status TEXT;
    ALTER TABLE files ADD COLUMN mavi_status_since REAL;
    ALTER TABLE files ADD COLUMN content_claimed INTEGER NOT NULL DEFAULT 0;
    UPDATE files SET signed_url = NULL, url_expires_at = NULL
        WHERE state IN {among(FINAL_STATES)};
    UPDATE files SET accepted_at = updated_at, sends = 1 WHERE state = {one(State.CONFIRMING)};
    UPDATE files SET content_claimed = 1
        WHERE state = {one(State.CONFIRMING)} AND sha256 IS NOT NULL;
    """,
    # v5: the hand-off outbox (on_done, webhook): rows written in the commit that finishes a
    # file, claimed under a lease, kept after delivery (or a drop) as the file's record.
    5: """
    CREATE TABLE handoffs (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        file_id          INTEGER NOT NULL REFERENCES files(id),
        kind             TEXT    NOT NULL CHECK (kind IN ('command', 'webhook')),
        event            TEXT    NOT NULL,
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  REAL,
        last_error       TEXT,
        lease_owner      TEXT,
        lease_expires_at REAL,
        delivered_at     REAL,
        dropped_at       REAL,
        created_at       REAL    NOT NULL
    );
    CREATE INDEX handoffs_owed ON handoffs(next_attempt_at)
        WHERE delivered_at IS NULL AND dropped_at IS NULL;
    CREATE INDEX handoffs_by_file ON handoffs(file_id, id);
    """,
}


def connect(db_path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """Open one connection with our settings; transactions are issued by hand."""
    if read_only:
        uri = f"{db_path.absolute().as_uri()}?mode=ro"  # as_uri escapes "?" and "#" in names
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 15000")
    conn.execute("PRAGMA foreign_keys = ON")
    if not read_only:
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: each transition is fsynced; at our write rate the cost is small and a power
        # cut cannot roll back a journaled signed URL.
        conn.execute("PRAGMA synchronous = FULL")
    return conn


class ConnectionPool:
    """One connection per thread (sqlite3 connections must not be shared mid-transaction)."""

    def __init__(self, db_path: Path, *, read_only: bool = False) -> None:
        self.db_path = db_path
        self._read_only = read_only
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = connect(self.db_path, read_only=self._read_only)
            except sqlite3.DatabaseError as exc:
                raise unusable_journal(self.db_path, exc) from exc
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def user_version(self) -> int:
        """The schema version; JournalError (naming the file) if it is not a database."""
        try:
            return int(self.get().execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            raise unusable_journal(self.db_path, exc) from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; nested calls on the same thread join the outer one, so a
        caller can batch many transitions into a single commit (one fsync)."""
        conn = self.get()
        if conn.in_transaction:
            yield conn
            return
        # IMMEDIATE takes the write lock up front, so no statement inside can hit SQLITE_BUSY
        # half-way (a deferred read that upgrades to a write ignores the busy timeout).
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
        self._local = threading.local()


def create_private_file(path: Path) -> None:
    """Create `path` 0600 if missing (before SQLite does it with the umask's mode)."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


def migrate(conn: sqlite3.Connection, db_path: Path) -> None:
    """Bring the schema to SCHEMA_VERSION; refuse a database from a newer version."""
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"{db_path}: journal schema version {version} is newer than this "
                f"mavi-uploader understands ({SCHEMA_VERSION}); upgrade mavi-uploader"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _split(_MIGRATIONS[target]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
    except sqlite3.DatabaseError as exc:
        raise unusable_journal(db_path, exc) from exc


def unusable_journal(db_path: Path, exc: Exception) -> JournalError:
    return JournalError(
        f"{db_path}: cannot open the journal ({exc}). If the file is corrupt, move it aside "
        "and start again (files already uploaded will be uploaded again); mavi-uploader will "
        "not overwrite it"
    )


@contextlib.contextmanager
def driver_errors(db_path: Path) -> Iterator[None]:
    """sqlite3.Error inside -> JournalError (the driver's message kept: "database or disk
    is full" is what an operator needs to read)."""
    try:
        yield
    except sqlite3.Error as exc:
        raise JournalError(f"{db_path}: {exc}") from exc


def _split(script: str) -> list[str]:
    lines = [ln for ln in script.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
