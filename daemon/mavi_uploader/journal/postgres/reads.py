"""Read-side queries of the fleet's journal, and retention (deleting finished rows)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mavi_uploader.core.records import Event, FileRecord
from mavi_uploader.core.states import ACTIVE_STATES, SETTLED_FOR_GOOD, State
from mavi_uploader.journal.postgres.connection import Database
from mavi_uploader.journal.postgres.liveness import HELD_BY_SILENT, SILENT_HOSTS, STEADY
from mavi_uploader.journal.postgres.places import Places
from mavi_uploader.journal.postgres.rows import to_event, to_record
from mavi_uploader.journal.sql import OWING_FILES, among, one, parked

_PARKED = parked(unless=HELD_BY_SILENT)


class FleetReads:
    """Queries; counts and listings cover the fleet, work queries what this host reaches."""

    _db: Database
    _places: Places

    def _mine(self) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def _records(self, sql: str, args: Any = None) -> list[FileRecord]:
        return [to_record(r, self._places) for r in self._db.rows(sql, args)]

    def recent_errors(self, limit: int = 5) -> list[FileRecord]:
        """Files whose last attempt left an error, newest first (for `status`)."""
        return self._records(
            "SELECT * FROM files WHERE last_error IS NOT NULL ORDER BY updated_at DESC LIMIT %s",
            (limit,),
        )

    def counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in State}
        for row in self._db.rows("SELECT state, COUNT(*) AS n FROM files GROUP BY state"):
            counts[row["state"]] = row["n"]
        return counts

    def get(self, file_id: int) -> FileRecord | None:
        found = self._records("SELECT * FROM files WHERE id = %s", (file_id,))
        return found[0] if found else None

    def by_path(self, path: str) -> list[FileRecord]:
        scope, key = self._places.locate(path)
        return self._records(
            "SELECT * FROM files WHERE scope = %s AND path = %s ORDER BY id", (scope, key)
        )

    def files(self, state: State | None = None, limit: int | None = None) -> list[FileRecord]:
        sql, args = "SELECT * FROM files", dict[str, Any]()
        if state is not None:
            sql += " WHERE state = %(state)s"
            args["state"] = state.value
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT %(limit)s"
            args["limit"] = limit
        return self._records(sql, args)

    def in_states(self, states: Sequence[State]) -> list[FileRecord]:
        mine, args = self._mine()
        return self._records(
            f"SELECT * FROM files WHERE {mine} AND state = ANY(%(states)s) ORDER BY id",
            {**args, "states": [s.value for s in states]},
        )

    def after_upload_owed(self, finished_before: float) -> list[FileRecord]:
        """Finished files this host can reach whose move/delete is still owed, and that it
        finished itself: a host that postponed a disposal because a writer had the file open
        (a writer only it can see) keeps it, unless it has gone silent."""
        mine, args = self._mine()
        return self._records(
            f"SELECT * FROM files WHERE {mine} AND after_upload_due = 1"
            " AND updated_at <= %(before)s"
            " AND (host_id IS NULL OR host_id = %(me)s"
            f"      OR (host_id IN {SILENT_HOSTS} AND {STEADY})) ORDER BY id",
            {**args, "before": finished_before},
        )

    def history(self, file_id: int) -> list[Event]:
        rows = self._db.rows("SELECT * FROM events WHERE file_id = %s ORDER BY id", (file_id,))
        return [to_event(r) for r in rows]

    def has_work_besides_confirming(self) -> bool:
        """Anything of this host's settling, uploading, or queued and not parked."""
        mine, args = self._mine()
        return bool(
            self._db.rows(
                f"SELECT 1 FROM files WHERE {mine} AND (state IN"
                f" {among((State.SETTLING, State.UPLOADING))}"
                f" OR (state = {one(State.QUEUED)} AND NOT {_PARKED})) LIMIT 1",
                args,
            )
        )

    def has_unfinished(self) -> bool:
        mine, args = self._mine()
        return bool(
            self._db.rows(
                f"SELECT 1 FROM files WHERE {mine} AND state IN {among(ACTIVE_STATES)} LIMIT 1",
                args,
            )
        )

    def next_due_at(self) -> float | None:
        """When the earliest queued/confirming row this host can take becomes due."""
        mine, args = self._mine()
        row = self._db.row(
            f"SELECT MIN(COALESCE(next_attempt_at, 0)) AS due FROM files WHERE {mine} AND ("
            f" (state = {one(State.QUEUED)} AND NOT {_PARKED})"
            f" OR (state = {one(State.CONFIRMING)} AND lease_owner IS NULL))",
            args,
        )
        return None if row is None or row["due"] is None else float(row["due"])

    # ---- retention ---------------------------------------------------------------------

    def prune(self, older_than: float, still_there: Callable[[FileRecord], bool]) -> int:
        """Delete finished rows last touched before `older_than`; a file's latest row stays
        while the file is there. Only files this host can look at are judged."""
        mine, args = self._mine()
        doomed: list[int] = []
        for row in self._db.rows(
            "SELECT f.*, f.id = (SELECT MAX(id) FROM files AS l WHERE l.scope = f.scope"
            " AND l.path = f.path) AS latest FROM files AS f"
            f" WHERE {mine.replace('scope', 'f.scope', 1)}"
            f" AND f.state IN {among(SETTLED_FOR_GOOD)} AND f.updated_at < %(before)s"
            f" AND f.id NOT IN {OWING_FILES}",
            {**args, "before": older_than},
        ):
            data = dict(row)
            latest = data.pop("latest")
            if not latest or not still_there(to_record(data, self._places)):
                doomed.append(data["id"])
        return len(self.forget(doomed))

    def forget(self, ids: Sequence[int]) -> list[int]:
        """Delete finished rows and their events (rows in flight are kept); a duplicate
        pointing at one keeps its asset id. Returns the ids deleted."""
        removed: list[int] = []
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            with self._db.transaction() as conn:
                doomed = [
                    r["id"]
                    for r in self._db.run(
                        conn,
                        "SELECT id FROM files WHERE id = ANY(%s)"
                        f" AND state NOT IN {among(ACTIVE_STATES)} FOR UPDATE",
                        (chunk,),
                    ).fetchall()
                ]
                for sql in (
                    "UPDATE files SET duplicate_of = NULL WHERE duplicate_of = ANY(%s)",
                    "DELETE FROM events WHERE file_id = ANY(%s)",
                    "DELETE FROM handoffs WHERE file_id = ANY(%s)",
                    "DELETE FROM files WHERE id = ANY(%s)",
                ):
                    self._db.run(conn, sql, (doomed,))
                removed += doomed
        return removed
