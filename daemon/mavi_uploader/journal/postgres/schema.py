"""PostgreSQL schema and migrations of the fleet's journal (a `schema_version` table).

The files and events tables mirror the SQLite journal's (core/records.FileRecord's columns),
plus what a fleet needs: `scope` (places.py) to name a file the same way on every host,
`host_id` of the host that holds or finished it, the hosts' heartbeats, the account's
rate slots and the hand-off outbox. Hosts may start together: migrations run under one
advisory lock.
"""

from __future__ import annotations

from mavi_uploader.core.states import ACTIVE_STATES, State
from mavi_uploader.journal.api import JournalError
from mavi_uploader.journal.postgres.connection import Conn
from mavi_uploader.journal.sql import among

SCHEMA_VERSION = 2
# pg_advisory_lock key held while migrating (any constant unique to this application).
MIGRATION_LOCK = 0x6D617669_0001

_MIGRATIONS: dict[int, str] = {
    1: f"""
    CREATE TABLE files (
        id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        scope             TEXT    NOT NULL,
        path              BYTEA   NOT NULL,
        watch_root        BYTEA,
        state             TEXT    NOT NULL CHECK (state IN {among(State)}),
        size              BIGINT,
        mtime_ns          BIGINT,
        stable_since      DOUBLE PRECISION,
        sha256            TEXT,
        asset_id          TEXT,
        signed_url        TEXT,
        url_expires_at    DOUBLE PRECISION,
        duplicate_of      BIGINT REFERENCES files(id),
        attempts          INTEGER NOT NULL DEFAULT 0,
        next_attempt_at   DOUBLE PRECISION,
        confirm_polls     INTEGER NOT NULL DEFAULT 0,
        last_error        TEXT,
        lease_owner       TEXT,
        lease_expires_at  DOUBLE PRECISION,
        bytes_sent        BIGINT  NOT NULL DEFAULT 0,
        created_at        DOUBLE PRECISION NOT NULL,
        updated_at        DOUBLE PRECISION NOT NULL,
        upload_started_at DOUBLE PRECISION,
        progress_at       DOUBLE PRECISION,
        after_upload_due  INTEGER NOT NULL DEFAULT 0,
        server_failures   INTEGER NOT NULL DEFAULT 0,
        sends             INTEGER NOT NULL DEFAULT 0,
        accepted_at       DOUBLE PRECISION,
        mavi_status       TEXT,
        mavi_status_since DOUBLE PRECISION,
        content_claimed   INTEGER NOT NULL DEFAULT 0,
        host_id           TEXT
    );
    -- One live row per file; a file re-written after it finished becomes a new row.
    CREATE UNIQUE INDEX files_one_active_per_path ON files(scope, path)
        WHERE state IN {among(ACTIVE_STATES)};
    CREATE INDEX files_path ON files(scope, path, id);
    CREATE INDEX files_due ON files(state, next_attempt_at);
    CREATE INDEX files_sha256 ON files(sha256) WHERE sha256 IS NOT NULL;
    CREATE INDEX files_by_age ON files(state, updated_at);
    CREATE INDEX files_after_upload_due ON files(id) WHERE after_upload_due = 1;
    CREATE INDEX files_held ON files(host_id) WHERE lease_owner IS NOT NULL;
    CREATE TABLE events (
        id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        file_id    BIGINT NOT NULL REFERENCES files(id),
        at         DOUBLE PRECISION NOT NULL,
        from_state TEXT,
        to_state   TEXT NOT NULL,
        reason     TEXT NOT NULL DEFAULT '',
        host_id    TEXT
    );
    CREATE INDEX events_by_file ON events(file_id, id);
    CREATE TABLE daemon_flags (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE hosts (
        host_id    TEXT PRIMARY KEY,
        pid        INTEGER NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        last_seen  DOUBLE PRECISION NOT NULL,
        -- since when its heartbeats have landed without a miss (an outage resets it)
        connected_since DOUBLE PRECISION NOT NULL
    );
    -- The account's request slots, one row per MAVI endpoint, on the database clock.
    CREATE TABLE rate_slots (
        endpoint      TEXT PRIMARY KEY,
        next_at       DOUBLE PRECISION NOT NULL,
        blocked_until DOUBLE PRECISION NOT NULL DEFAULT 0
    );
    """,
    # v2: the hand-off outbox (on_done, webhook), as SQLite's v5, plus the host that holds
    # or delivered each (the crash rule frees only this host's leases).
    2: """
    CREATE TABLE handoffs (
        id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        file_id          BIGINT  NOT NULL REFERENCES files(id),
        kind             TEXT    NOT NULL CHECK (kind IN ('command', 'webhook')),
        event            TEXT    NOT NULL,
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  DOUBLE PRECISION,
        last_error       TEXT,
        lease_owner      TEXT,
        lease_expires_at DOUBLE PRECISION,
        delivered_at     DOUBLE PRECISION,
        dropped_at       DOUBLE PRECISION,
        created_at       DOUBLE PRECISION NOT NULL,
        host_id          TEXT
    );
    CREATE INDEX handoffs_owed ON handoffs(next_attempt_at)
        WHERE delivered_at IS NULL AND dropped_at IS NULL;
    CREATE INDEX handoffs_by_file ON handoffs(file_id, id);
    """,
}


def schema_version(conn: Conn) -> int:
    """The journal's schema version; 0 for a database it has never been created in."""
    row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL AS made").fetchone()
    if row is None or not row["made"]:
        return 0
    row = conn.execute("SELECT max(version) AS version FROM schema_version").fetchone()
    return int(row["version"] or 0) if row is not None else 0


def migrate(conn: Conn, shown_url: str) -> None:
    """Bring the schema to SCHEMA_VERSION (one transaction per step, under an advisory lock
    so hosts starting together migrate once); refuse a journal from a newer version."""
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        with conn.transaction():
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        version = schema_version(conn)
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"journal_url {shown_url}: journal schema version {version} is newer than"
                f" this mavi-uploader understands ({SCHEMA_VERSION}); upgrade mavi-uploader"
                " on this host"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with conn.transaction():
                conn.execute(_MIGRATIONS[target].encode())
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (target,))
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
