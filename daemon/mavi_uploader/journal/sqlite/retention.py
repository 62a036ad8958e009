"""Journal retention and `forget`: deleting finished rows and their events."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Sequence

from mavi_uploader.core.records import FileRecord
from mavi_uploader.core.states import ACTIVE_STATES, SETTLED_FOR_GOOD
from mavi_uploader.journal.sql import OWING_FILES, among
from mavi_uploader.journal.sqlite.reads import to_record

# Finished for good (failed rows stay until someone acts on them).
_PRUNABLE = among(SETTLED_FOR_GOOD)


class JournalRetention:
    """The deleting writes; `Journal` provides the connection and transactions."""

    def _conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def prune(self, older_than: float, still_there: Callable[[FileRecord], bool]) -> int:
        """Delete finished rows (and their events) last touched before `older_than`.

        The latest row of a path whose file is still there is kept: it is what stops a
        rescan from uploading that file again. Failed rows stay until someone acts on them,
        and so do rows with a hand-off owed (only `forget` gives those up).
        """
        rows = (
            self._conn()
            .execute(
                f"SELECT * FROM files WHERE state IN {_PRUNABLE} AND id NOT IN {OWING_FILES}"
                " AND updated_at < ? AND id NOT IN (SELECT MAX(id) FROM files GROUP BY path)",
                (older_than,),
            )
            .fetchall()
        )
        latest = (
            self._conn()
            .execute(
                f"SELECT * FROM files WHERE state IN {_PRUNABLE} AND id NOT IN {OWING_FILES}"
                " AND updated_at < ? AND id IN (SELECT MAX(id) FROM files GROUP BY path)",
                (older_than,),
            )
            .fetchall()
        )
        doomed = [r["id"] for r in rows]
        doomed += [r["id"] for r in latest if not still_there(to_record(r))]
        return len(self.forget(doomed))

    def forget(self, ids: Sequence[int]) -> list[int]:
        """Delete finished rows, their events and hand-offs (owed ones too: `forget` is how a
        person gives them up) (rows in flight are kept: the check and the
        delete share one transaction); a duplicate pointing at one keeps its asset id.
        Returns the ids deleted."""
        removed: list[int] = []
        active = among(ACTIVE_STATES)
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            with self._tx() as conn:
                sql = f"SELECT id FROM files WHERE id IN ({marks}) AND state NOT IN {active}"
                doomed = [row[0] for row in conn.execute(sql, chunk)]
                marks = ",".join("?" * len(doomed))
                for sql in (
                    f"UPDATE files SET duplicate_of = NULL WHERE duplicate_of IN ({marks})",
                    f"DELETE FROM events WHERE file_id IN ({marks})",
                    f"DELETE FROM handoffs WHERE file_id IN ({marks})",
                    f"DELETE FROM files WHERE id IN ({marks})",
                ):
                    conn.execute(sql, doomed)
                removed += doomed
        return removed
