"""New rows in the fleet's journal: sightings, `enqueue` and refusals (the sight rules of
the SQLite journal, with each file named by its scope so every host's sighting of a share
file lands on one row)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from mavi_uploader.core.records import FileRecord, Observation, same_version
from mavi_uploader.core.states import ACTIVE_STATES, NEW_VERSION, State
from mavi_uploader.journal.api import check_transition
from mavi_uploader.journal.postgres.connection import Conn, Database
from mavi_uploader.journal.postgres.places import Places, share_of
from mavi_uploader.journal.postgres.rows import to_record
from mavi_uploader.journal.sql import handles

_ACTIVE = {s.value for s in ACTIVE_STATES}


def _same(row: Mapping[str, Any], obs: Observation, scope: str) -> bool:
    """Is the sighting the row's version? (On a share, hosts see mtimes at their own
    precision: core/records.same_version.)"""
    known = (row["size"], row["mtime_ns"])
    return same_version(known, (obs.size, obs.mtime_ns), shared=share_of(scope) is not None)


class FleetSightings:
    """Sightings and commands that make rows; `PostgresJournal` provides the moves."""

    _db: Database
    _places: Places
    _clock: Callable[[], float]

    def _event(self, conn: Conn, file_id: int, old: State | None, new: State, why: str) -> None:
        raise NotImplementedError

    def _move(
        self,
        conn: Conn,
        file_id: int,
        old: State | Sequence[State] | None,
        new: State,
        why: str,
        fields: dict[str, Any],
        owner: str | None = None,
    ) -> FileRecord | None:
        raise NotImplementedError

    def _lock_file(self, conn: Conn, scope: str, key: bytes) -> None:
        raise NotImplementedError

    def sight(self, observations: Iterable[Observation]) -> list[FileRecord]:
        """Record candidate files seen on disk; returns rows created or sent back to settle."""
        located = [(self._places.locate(obs.path), obs) for obs in observations]
        # One order of locks for every host: two hosts sighting one share never deadlock.
        located.sort(key=lambda item: item[0])
        changed: list[FileRecord] = []
        now = self._clock()
        with self._db.transaction() as conn:
            for (scope, key), obs in located:
                record = self._sight_one(conn, obs, scope, key, now)
                if record is not None:
                    changed.append(record)
        return changed

    def _latest(self, conn: Conn, scope: str, key: bytes) -> dict[str, Any] | None:
        self._lock_file(conn, scope, key)
        return self._db.run(
            conn,
            "SELECT * FROM files WHERE scope = %s AND path = %s ORDER BY id DESC LIMIT 1",
            (scope, key),
        ).fetchone()

    def _sight_one(
        self, conn: Conn, obs: Observation, scope: str, key: bytes, now: float
    ) -> FileRecord | None:
        row = self._latest(conn, scope, key)
        same = row is not None and _same(row, obs, scope)
        if row is not None and row["state"] in _ACTIVE:
            if row["state"] == State.QUEUED.value and not same:
                fields = {"size": obs.size, "mtime_ns": obs.mtime_ns, "stable_since": now}
                why = "changed while queued"
                return self._move(
                    conn, row["id"], State.QUEUED, State.SETTLING, why, {**fields, **NEW_VERSION}
                )
            if row["state"] == State.SETTLING.value and row["next_attempt_at"] is not None:
                # A file deferred as unreadable was touched (chmod?): look again at once.
                self._db.run(
                    conn, "UPDATE files SET next_attempt_at = NULL WHERE id = %s", (row["id"],)
                )
            return None
        if row is not None and same and handles(row["state"], row["last_error"]):
            return None
        record = self._insert(conn, obs, scope, key, State.SETTLING)
        why = "seen" if row is None else f"seen again after {row['state']} (new generation)"
        if row is not None and same and row["state"] == State.SKIPPED.value:  # a rule's skip
            why = f"now a candidate (skipped before: {row['last_error']})"
        self._event(conn, record.id, None, State.SETTLING, why)
        return record

    def _insert(
        self,
        conn: Conn,
        obs: Observation,
        scope: str,
        key: bytes,
        state: State,
        last_error: str | None = None,
    ) -> FileRecord:
        check_transition(None, None, state)
        now = self._clock()
        root = self._places.locate(obs.watch_root)[1] if obs.watch_root else None
        row = self._db.run(
            conn,
            "INSERT INTO files (scope, path, watch_root, state, size, mtime_ns, stable_since,"
            " last_error, created_at, updated_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
            " RETURNING *",
            (scope, key, root, state.value, obs.size, obs.mtime_ns, now, last_error, now, now),
        ).fetchone()
        assert row is not None
        return to_record(row, self._places)

    def handled_index(self, watch_root: str) -> dict[str, tuple[int, int]]:
        """path -> (size, mtime_ns) of files under `watch_root` whose latest row is handled."""
        scope, key = self._places.locate(watch_root.rstrip(os.sep) or os.sep)
        prefix = key + b"/" if key and not key.endswith(b"/") else key
        rows = self._db.rows(
            "SELECT DISTINCT ON (path) path, size, mtime_ns, state, last_error FROM files"
            " WHERE scope = %s AND substring(path FROM 1 FOR %s) = %s ORDER BY path, id DESC",
            (scope, len(prefix), prefix),
        )
        return {
            self._places.shown(scope, r["path"]): (r["size"], r["mtime_ns"])
            for r in rows
            if handles(r["state"], r["last_error"])
        }

    # ---- commands ----------------------------------------------------------------------

    def enqueue(self, obs: Observation, why: str) -> FileRecord:
        """Queue a file now (no settle wait); its live or already-handled row if it has one."""
        scope, key = self._places.locate(obs.path)
        with self._db.transaction() as conn:
            row = self._latest(conn, scope, key)
            same = row is not None and _same(row, obs, scope)
            if row is not None and same and handles(row["state"], row["last_error"]):
                return to_record(row, self._places)
            if row is not None and row["state"] in _ACTIVE:
                if row["state"] != State.SETTLING.value:
                    return to_record(row, self._places)
                fields = {"size": obs.size, "mtime_ns": obs.mtime_ns, "next_attempt_at": None}
                fields.update({} if same else NEW_VERSION)
                moved = self._move(conn, row["id"], State.SETTLING, State.QUEUED, why, fields)
                assert moved is not None  # the file's lock is ours
                return moved
            record = self._insert(conn, obs, scope, key, State.QUEUED)
            self._event(conn, record.id, None, State.QUEUED, why)
            return record

    def record_rejection(self, obs: Observation, why: str) -> FileRecord:
        """Journal a file refused outright (e.g. `enqueue` of a path outside every watch)."""
        scope, key = self._places.locate(obs.path)
        with self._db.transaction() as conn:
            record = self._insert(conn, obs, scope, key, State.SKIPPED, last_error=why)
            self._event(conn, record.id, None, State.SKIPPED, why)
            return record
