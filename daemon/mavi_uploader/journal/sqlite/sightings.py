"""New rows and the sight rules: what the watcher saw, `enqueue` and refusals.

A path has at most one live row; a version already handled is not journaled again; a queued
file that changed settles again and forgets its old content (`NEW_VERSION`).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from mavi_uploader.core.records import FileRecord, Observation, path_to_blob
from mavi_uploader.core.states import ACTIVE_STATES, NEW_VERSION, State
from mavi_uploader.journal.api import check_transition
from mavi_uploader.journal.sql import handles
from mavi_uploader.journal.sqlite.reads import to_record


class JournalSightings:
    """Sightings and commands that make rows; `Journal` provides transactions and moves."""

    _clock: Callable[[], float]

    def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _event(
        self, conn: sqlite3.Connection, file_id: int, old: State | None, new: State, why: str
    ) -> None:
        raise NotImplementedError

    def _move(
        self,
        conn: sqlite3.Connection,
        file_id: int,
        old: State | Sequence[State] | None,
        new: State,
        why: str,
        fields: dict[str, Any],
        owner: str | None = None,
    ) -> FileRecord | None:
        raise NotImplementedError

    def sight(self, observations: Iterable[Observation]) -> list[FileRecord]:
        """Record candidate files seen on disk; returns rows created or sent back to settle."""
        changed: list[FileRecord] = []
        now = self._clock()
        with self._tx() as conn:
            for obs in observations:
                record = self._sight_one(conn, obs, now)
                if record is not None:
                    changed.append(record)
        return changed

    def _sight_one(
        self, conn: sqlite3.Connection, obs: Observation, now: float
    ) -> FileRecord | None:
        blob = path_to_blob(obs.path)
        row = conn.execute(
            "SELECT * FROM files WHERE path = ? ORDER BY id DESC LIMIT 1", (blob,)
        ).fetchone()
        same = row is not None and (row["size"], row["mtime_ns"]) == (obs.size, obs.mtime_ns)
        if row is not None and row["state"] in [s.value for s in ACTIVE_STATES]:
            if row["state"] == State.QUEUED.value and not same:
                fields = {"size": obs.size, "mtime_ns": obs.mtime_ns, "stable_since": now}
                why = "changed while queued"
                return self._move(
                    conn, row["id"], State.QUEUED, State.SETTLING, why, {**fields, **NEW_VERSION}
                )
            if row["state"] == State.SETTLING.value and row["next_attempt_at"] is not None:
                # A file deferred as unreadable was touched (chmod?): look again at once.
                conn.execute("UPDATE files SET next_attempt_at = NULL WHERE id = ?", (row["id"],))
            return None
        if row is not None and same and handles(row["state"], row["last_error"]):
            return None
        record = self._insert(conn, obs, State.SETTLING)
        why = "seen" if row is None else f"seen again after {row['state']} (new generation)"
        if row is not None and same and row["state"] == State.SKIPPED.value:  # a rule's skip
            why = f"now a candidate (skipped before: {row['last_error']})"
        self._event(conn, record.id, None, State.SETTLING, why)
        return record

    def _insert(
        self,
        conn: sqlite3.Connection,
        obs: Observation,
        state: State,
        last_error: str | None = None,
    ) -> FileRecord:
        check_transition(None, None, state)
        now = self._clock()
        cur = conn.execute(
            "INSERT INTO files (path, watch_root, state, size, mtime_ns, stable_since,"
            " last_error, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?) RETURNING *",
            (
                path_to_blob(obs.path),
                path_to_blob(obs.watch_root) if obs.watch_root else None,
                state.value,
                obs.size,
                obs.mtime_ns,
                now,
                last_error,
                now,
                now,
            ),
        )
        return to_record(cur.fetchone())

    # ---- commands ----------------------------------------------------------------------

    def enqueue(self, obs: Observation, why: str) -> FileRecord:
        """Queue a file now (no settle wait). Returns its live row if it has one, or the
        finished row when this very version (size, mtime) was already handled."""
        blob = path_to_blob(obs.path)
        with self._tx() as conn:
            row = conn.execute(
                "SELECT * FROM files WHERE path = ? ORDER BY id DESC LIMIT 1", (blob,)
            ).fetchone()
            same = row is not None and (row["size"], row["mtime_ns"]) == (obs.size, obs.mtime_ns)
            if row is not None and same and handles(row["state"], row["last_error"]):
                return to_record(row)
            if row is not None and row["state"] in [s.value for s in ACTIVE_STATES]:
                if row["state"] != State.SETTLING.value:
                    return to_record(row)
                fields = {"size": obs.size, "mtime_ns": obs.mtime_ns, "next_attempt_at": None}
                fields.update({} if same else NEW_VERSION)
                moved = self._move(conn, row["id"], State.SETTLING, State.QUEUED, why, fields)
                assert moved is not None  # the row is locked by our IMMEDIATE transaction
                return moved
            record = self._insert(conn, obs, State.QUEUED)
            self._event(conn, record.id, None, State.QUEUED, why)
            return record

    def record_rejection(self, obs: Observation, why: str) -> FileRecord:
        """Journal a file refused outright (e.g. `enqueue` of a path outside every watch)."""
        with self._tx() as conn:
            record = self._insert(conn, obs, State.SKIPPED, last_error=why)
            self._event(conn, record.id, None, State.SKIPPED, why)
            return record
