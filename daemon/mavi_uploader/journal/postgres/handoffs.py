"""The hand-off outbox of a fleet: owed with the move that finishes a file, claimed with
`FOR UPDATE SKIP LOCKED` (each hand-off runs on one host of the fleet), ended with an event."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mavi_uploader.core.handoffs import Handoff, HandoffEnd, HandoffKind, event_of
from mavi_uploader.core.records import FileRecord
from mavi_uploader.core.states import State
from mavi_uploader.journal.postgres.connection import Conn, Database
from mavi_uploader.journal.postgres.places import Places
from mavi_uploader.journal.postgres.rows import to_record
from mavi_uploader.journal.sql import (
    CLAIM_HANDOFF_ORDER,
    HANDOFF_ORDER,
    OWED,
    handoff_due,
    handoff_ending,
    kinds_literal,
    to_handoff,
)


class FleetHandoffs:
    """`PostgresJournal` provides the database, places, clock, host and events."""

    _db: Database
    _places: Places
    _clock: Callable[[], float]

    def _mine(self) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def _host(self) -> str:
        raise NotImplementedError

    def _event(self, conn: Conn, file_id: int, old: State | None, new: State, why: str) -> None:
        raise NotImplementedError

    def _owe_handoffs(
        self, conn: Conn, file_id: int, state: State, kinds: Sequence[HandoffKind]
    ) -> None:
        """Inside the transaction that moves the file to `state` (done or duplicate)."""
        event, now = event_of(state), self._clock()
        for kind in dict.fromkeys(kinds):
            self._db.run(
                conn,
                "INSERT INTO handoffs (file_id, kind, event, created_at) VALUES (%s, %s, %s, %s)",
                (file_id, kind.value, event, now),
            )

    def claim_handoff(
        self, owner: str, lease_seconds: float, kinds: Sequence[HandoffKind]
    ) -> tuple[Handoff, FileRecord] | None:
        """Only hand-offs of files this host reaches (a hook gets the path as it sees it)."""
        if not kinds:
            return None
        now = self._clock()
        mine, args = self._mine()
        with self._db.transaction() as conn:
            row = self._db.run(
                conn,
                "SELECT h.* FROM handoffs AS h JOIN files ON files.id = h.file_id"
                f" WHERE {mine} AND {handoff_due(now='%(now)s', kinds=kinds_literal(kinds))}"
                f" {CLAIM_HANDOFF_ORDER} LIMIT 1 FOR UPDATE OF h SKIP LOCKED",
                {**args, "now": now},
            ).fetchone()
            if row is None:
                return None
            self._db.run(
                conn,
                "UPDATE handoffs SET lease_owner = %s, lease_expires_at = %s, host_id = %s"
                " WHERE id = %s",
                (owner, now + lease_seconds, self._host(), row["id"]),
            )
            file_row = self._db.run(conn, "SELECT * FROM files WHERE id = %s", (row["file_id"],))
            rec = to_record(file_row.fetchone() or {}, self._places)
            if row["lease_owner"] is not None:
                holder = f"{row['host_id']}/{row['lease_owner']}"
                why = f"hand-off {row['kind']}: lease of {holder} expired; reclaimed by {owner}"
                self._event(conn, rec.id, rec.state, rec.state, why)
            data = {**dict(row), "lease_owner": owner, "lease_expires_at": now + lease_seconds}
            return to_handoff(data), rec

    def end_handoff(
        self,
        handoff_id: int,
        owner: str,
        end: HandoffEnd,
        reason: str,
        *,
        last_error: str | None = None,
        next_attempt_at: float | None = None,
    ) -> bool:
        columns: dict[str, Any] = handoff_ending(end, self._clock())
        if end is HandoffEnd.FAILED:
            columns.update(last_error=last_error, next_attempt_at=next_attempt_at)
        counted = end in (HandoffEnd.DELIVERED, HandoffEnd.FAILED)
        sets = ", ".join([*(f"{k} = %(v_{k})s" for k in columns), "attempts = attempts + %(n)s"])
        values = {f"v_{k}": v for k, v in columns.items()}
        with self._db.transaction() as conn:
            row = self._db.run(
                conn,
                f"UPDATE handoffs SET {sets} WHERE id = %(id)s AND lease_owner = %(owner)s"
                " AND host_id = %(host)s RETURNING file_id",
                {**values, "n": int(counted), "id": handoff_id, "owner": owner,
                 "host": self._host()},
            ).fetchone()  # fmt: skip
            if row is None:
                return False
            if end is not HandoffEnd.RELEASED:
                found = self._db.run(
                    conn, "SELECT state FROM files WHERE id = %s", (row["file_id"],)
                ).fetchone()
                assert found is not None  # a file with hand-offs is never deleted before them
                state = State(found["state"])
                self._event(conn, row["file_id"], state, state, reason)
            return True

    def handoffs(
        self, file_ids: Sequence[int] | None = None, limit: int | None = None
    ) -> list[Handoff]:
        sql, args = f"SELECT h.* FROM handoffs AS h WHERE {OWED}", dict[str, Any]()
        if file_ids is not None:
            sql += " AND h.file_id = ANY(%(ids)s)"
            args["ids"] = list(file_ids)
        sql += f" {HANDOFF_ORDER}"
        if limit is not None:
            sql += " LIMIT %(limit)s"
            args["limit"] = limit
        return [to_handoff(r) for r in self._db.rows(sql, args)]

    def handoff_counts(self) -> tuple[int, int]:
        row = self._db.row(
            "SELECT COUNT(*) AS owed, COUNT(*) FILTER (WHERE h.attempts > 0) AS failing"
            f" FROM handoffs AS h WHERE {OWED}"
        )
        return (int(row["owed"]), int(row["failing"])) if row else (0, 0)

    def _release_handoff_leases(self, conn: Conn) -> None:
        """Crash rule: this host's runners died with the daemon; other hosts' leases stay."""
        self._db.run(
            conn,
            "UPDATE handoffs SET lease_owner = NULL, lease_expires_at = NULL"
            " WHERE host_id = %s AND lease_owner IS NOT NULL"
            " AND delivered_at IS NULL AND dropped_at IS NULL",
            (self._host(),),
        )
