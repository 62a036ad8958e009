"""Read-side queries of the journal: what the worker, the reports and the rescan ask."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from typing import Any

from mavi_uploader.core.records import (
    Event,
    FileRecord,
    Pause,
    blob_to_path,
    path_to_blob,
)
from mavi_uploader.core.states import ACTIVE_STATES, State
from mavi_uploader.journal.sql import PARKED, among, handles, one


def to_record(row: sqlite3.Row) -> FileRecord:
    data = dict(row)
    data["path"] = blob_to_path(data["path"])
    root = data["watch_root"]
    data["watch_root"] = blob_to_path(root) if root is not None else None
    data["state"] = State(data["state"])
    # .get: `status` may read an older journal its daemon has not migrated yet.
    data["after_upload_due"] = bool(data.get("after_upload_due", 0))
    data["content_claimed"] = bool(data.get("content_claimed", 0))
    return FileRecord(**data)


class JournalReads:
    """Queries only; `Journal` adds the writes. Subclasses provide the connection."""

    def _conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    def handled_index(self, watch_root: str) -> dict[str, tuple[int, int]]:
        """path -> (size, mtime_ns) of files under `watch_root` whose latest row is handled."""
        prefix = path_to_blob(watch_root.rstrip(os.sep) + os.sep)
        rows = self._conn().execute(
            "SELECT path, size, mtime_ns, state, last_error FROM files WHERE id IN"
            " (SELECT MAX(id) FROM files WHERE substr(path, 1, ?) = ? GROUP BY path)",
            (len(prefix), prefix),
        )
        return {
            blob_to_path(r["path"]): (r["size"], r["mtime_ns"])
            for r in rows
            if handles(r["state"], r["last_error"])
        }

    def recent_errors(self, limit: int = 5) -> list[FileRecord]:
        """Files whose last attempt left an error, newest first (for `status`)."""
        rows = self._conn().execute(
            "SELECT * FROM files WHERE last_error IS NOT NULL ORDER BY updated_at DESC LIMIT ?",
            (limit,),
        )
        return [to_record(r) for r in rows]

    def pause(self) -> Pause | None:
        flags = dict(self._conn().execute("SELECT key, value FROM daemon_flags").fetchall())
        if "pause_reason" not in flags:
            return None
        return Pause(flags["pause_reason"], float(flags.get("pause_since", "0")))

    def counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in State}
        for state, n in self._conn().execute("SELECT state, COUNT(*) FROM files GROUP BY state"):
            counts[state] = n
        return counts

    def get(self, file_id: int) -> FileRecord | None:
        row = self._conn().execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()
        return to_record(row) if row else None

    def by_path(self, path: str) -> list[FileRecord]:
        rows = self._conn().execute(
            "SELECT * FROM files WHERE path = ? ORDER BY id", (path_to_blob(path),)
        )
        return [to_record(r) for r in rows]

    def files(self, state: State | None = None, limit: int | None = None) -> list[FileRecord]:
        sql = "SELECT * FROM files"
        args: list[Any] = []
        if state is not None:
            sql += " WHERE state = ?"
            args.append(state.value)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [to_record(r) for r in self._conn().execute(sql, args)]

    def in_states(self, states: Sequence[State]) -> list[FileRecord]:
        marks = ",".join("?" * len(states))
        rows = self._conn().execute(
            f"SELECT * FROM files WHERE state IN ({marks}) ORDER BY id",
            [s.value for s in states],
        )
        return [to_record(r) for r in rows]

    def after_upload_owed(self, finished_before: float) -> list[FileRecord]:
        """Finished files whose move/delete is still owed (a crash, or it failed), last
        touched no later than `finished_before` (journal clock)."""
        rows = self._conn().execute(
            "SELECT * FROM files WHERE after_upload_due = 1 AND updated_at <= ? ORDER BY id",
            (finished_before,),
        )
        return [to_record(r) for r in rows]

    def history(self, file_id: int) -> list[Event]:
        rows = self._conn().execute(
            "SELECT * FROM events WHERE file_id = ? ORDER BY id", (file_id,)
        )
        return [
            Event(
                id=r["id"],
                file_id=r["file_id"],
                at=r["at"],
                from_state=State(r["from_state"]) if r["from_state"] else None,
                to_state=State(r["to_state"]),
                reason=r["reason"],
            )
            for r in rows
        ]

    def has_work_besides_confirming(self) -> bool:
        """Anything settling, uploading, or queued and not parked behind a copy in flight."""
        row = (
            self._conn()
            .execute(
                f"SELECT 1 FROM files WHERE state IN {among((State.SETTLING, State.UPLOADING))}"
                f" OR (state = {one(State.QUEUED)} AND NOT {PARKED}) LIMIT 1"
            )
            .fetchone()
        )
        return row is not None

    def has_unfinished(self) -> bool:
        row = (
            self._conn()
            .execute(f"SELECT 1 FROM files WHERE state IN {among(ACTIVE_STATES)} LIMIT 1")
            .fetchone()
        )
        return row is not None

    def next_due_at(self) -> float | None:
        """When the earliest queued/confirming row becomes due (for idle waits)."""
        row = (
            self._conn()
            .execute(
                "SELECT MIN(COALESCE(next_attempt_at, 0)) FROM files WHERE"
                f" (state = {one(State.QUEUED)} AND NOT {PARKED})"
                f" OR (state = {one(State.CONFIRMING)} AND lease_owner IS NULL)"
            )
            .fetchone()
        )
        return None if row is None or row[0] is None else float(row[0])
