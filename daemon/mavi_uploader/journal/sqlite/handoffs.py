"""The hand-off outbox on SQLite: owed with the move that finishes a file, claimed under a
lease, ended with an event on the file. One daemon per state dir: the write lock of
`BEGIN IMMEDIATE` is all the claim needs."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from mavi_uploader.core.handoffs import Handoff, HandoffEnd, HandoffKind, event_of
from mavi_uploader.core.records import FileRecord
from mavi_uploader.core.states import State
from mavi_uploader.journal.sql import (
    CLAIM_HANDOFF_ORDER,
    HANDOFF_ORDER,
    OWED,
    handoff_due,
    handoff_ending,
    kinds_literal,
    to_handoff,
)
from mavi_uploader.journal.sqlite.reads import to_record


class JournalHandoffs:
    """`Journal` provides the connection, transactions, the clock and events."""

    _clock: Callable[[], float]

    def _conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _event(
        self, conn: sqlite3.Connection, file_id: int, old: State | None, new: State, why: str
    ) -> None:
        raise NotImplementedError

    def _owe_handoffs(
        self, conn: sqlite3.Connection, file_id: int, state: State, kinds: Sequence[HandoffKind]
    ) -> None:
        """Inside the transaction that moves the file to `state` (done or duplicate)."""
        event, now = event_of(state), self._clock()
        conn.executemany(
            "INSERT INTO handoffs (file_id, kind, event, created_at) VALUES (?, ?, ?, ?)",
            [(file_id, kind.value, event, now) for kind in dict.fromkeys(kinds)],
        )

    def claim_handoff(
        self, owner: str, lease_seconds: float, kinds: Sequence[HandoffKind]
    ) -> tuple[Handoff, FileRecord] | None:
        if not kinds:
            return None
        now = self._clock()
        with self._tx() as conn:
            row = conn.execute(
                f"SELECT h.* FROM handoffs AS h"
                f" WHERE {handoff_due(now=':now', kinds=kinds_literal(kinds))}"
                f" {CLAIM_HANDOFF_ORDER} LIMIT 1",
                {"now": now},
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE handoffs SET lease_owner = ?, lease_expires_at = ? WHERE id = ?",
                (owner, now + lease_seconds, row["id"]),
            )
            file_row = conn.execute("SELECT * FROM files WHERE id = ?", (row["file_id"],))
            rec = to_record(file_row.fetchone())
            if row["lease_owner"] is not None:
                why = (
                    f"hand-off {row['kind']}: lease of {row['lease_owner']} expired;"
                    f" reclaimed by {owner}"
                )
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
        now = self._clock()
        columns: dict[str, Any] = handoff_ending(end, now)
        if end is HandoffEnd.FAILED:
            columns.update(last_error=last_error, next_attempt_at=next_attempt_at)
        counted = end in (HandoffEnd.DELIVERED, HandoffEnd.FAILED)
        sets = ", ".join([*(f"{k} = ?" for k in columns), "attempts = attempts + ?"])
        with self._tx() as conn:
            cur = conn.execute(
                f"UPDATE handoffs SET {sets} WHERE id = ? AND lease_owner = ? RETURNING file_id",
                [*columns.values(), int(counted), handoff_id, owner],
            )
            row = cur.fetchone()
            if row is None:
                return False
            if end is not HandoffEnd.RELEASED:
                state = conn.execute(
                    "SELECT state FROM files WHERE id = ?", (row["file_id"],)
                ).fetchone()["state"]
                self._event(conn, row["file_id"], State(state), State(state), reason)
            return True

    def handoffs(
        self, file_ids: Sequence[int] | None = None, limit: int | None = None
    ) -> list[Handoff]:
        if file_ids is not None and not file_ids:
            return []
        sql, args = f"SELECT h.* FROM handoffs AS h WHERE {OWED}", list[Any]()
        if file_ids is not None:
            sql += f" AND h.file_id IN ({','.join('?' * len(file_ids))})"
            args += list(file_ids)
        sql += f" {HANDOFF_ORDER}"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [to_handoff(r) for r in self._conn().execute(sql, args)]

    def handoff_counts(self) -> tuple[int, int]:
        row = (
            self._conn()
            .execute(
                f"SELECT COUNT(*), COALESCE(SUM(h.attempts > 0), 0) FROM handoffs AS h WHERE {OWED}"
            )
            .fetchone()
        )
        return int(row[0]), int(row[1])

    def _release_handoff_leases(self, conn: sqlite3.Connection) -> int:
        """Crash rule: no runner of this state dir is alive at start; their leases go."""
        cur = conn.execute(
            "UPDATE handoffs SET lease_owner = NULL, lease_expires_at = NULL"
            " WHERE lease_owner IS NOT NULL AND delivered_at IS NULL AND dropped_at IS NULL"
        )
        return cur.rowcount
