"""Dedupe across the fleet: the first row to claim some content (or, not hashed yet, every
content of its size) is the one that uploads it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mavi_uploader.core.records import FileRecord
from mavi_uploader.core.states import State
from mavi_uploader.journal.api import ContentClaim, SizeClaim
from mavi_uploader.journal.postgres.connection import Conn, Database, lock_key
from mavi_uploader.journal.postgres.liveness import HELD_BY_SILENT
from mavi_uploader.journal.postgres.places import Places
from mavi_uploader.journal.postgres.rows import to_record
from mavi_uploader.journal.sql import holds, one, same_content, size_taken

_HOLDS = holds(unless=HELD_BY_SILENT)
_SAME_CONTENT = same_content("%(sha)s", "%(size)s", unless=HELD_BY_SILENT)
_SIZE_TAKEN = size_taken(unless=HELD_BY_SILENT)


class FleetDedupe:
    """`claim_content` and `claim_size`; the store provides the connection, clock and host.

    Both serialise on advisory locks, always the size's before the content's, so two hosts
    deciding about copies at once cannot both claim and cannot deadlock.
    """

    _db: Database
    _places: Places
    _clock: Callable[[], float]

    def _liveness(self) -> dict[str, Any]:
        raise NotImplementedError

    def _host(self) -> str:
        raise NotImplementedError

    def _lock_size(self, conn: Conn, size: int) -> None:
        self._db.run(conn, "SELECT pg_advisory_xact_lock(%s)", (lock_key("size", str(size)),))

    def claim_content(
        self, file_id: int, sha256: str, owner: str, *, max_sends: int
    ) -> tuple[ContentClaim, FileRecord | None]:
        """A done twin, a twin holding the content (or its size, with no hash yet), a failed
        twin that had more than `max_sends` complete uploads, or else our row claims it."""
        with self._db.transaction() as conn:
            mine = self._db.run(conn, "SELECT size FROM files WHERE id = %s", (file_id,))
            size = (mine.fetchone() or {"size": None})["size"]
            if size is not None:
                self._lock_size(conn, size)
            self._db.run(conn, "SELECT pg_advisory_xact_lock(%s)", (lock_key("content", sha256),))
            twin = self._db.run(
                conn,
                f"SELECT * FROM files AS twin WHERE {_SAME_CONTENT} AND id != %(id)s"
                f" AND (state = {one(State.DONE)} OR {_HOLDS}"
                f"      OR (state = {one(State.FAILED)} AND sends > %(max)s))"
                f" ORDER BY state = {one(State.DONE)} DESC, state = {one(State.FAILED)}, id"
                " LIMIT 1",
                {"sha": sha256, "size": size, "id": file_id, "max": max_sends, **self._liveness()},
            ).fetchone()
            if twin is not None:
                found = {
                    State.DONE.value: ContentClaim.UPLOADED,
                    State.FAILED.value: ContentClaim.SPENT,
                }.get(twin["state"], ContentClaim.IN_FLIGHT)
                return found, to_record(twin, self._places)
            cur = self._db.run(
                conn,
                "UPDATE files SET sha256 = %s, content_claimed = 1, updated_at = %s"
                " WHERE id = %s AND lease_owner = %s AND host_id = %s",
                (sha256, self._clock(), file_id, owner, self._host()),
            )
            return (ContentClaim.CLAIMED if cur.rowcount == 1 else ContentClaim.LOST), None

    def claim_size(self, file_id: int, size: int, owner: str) -> SizeClaim:
        """Another row that might hold a copy (`sql.size_taken`), or else our row holds every
        content of its size until its hash is known."""
        with self._db.transaction() as conn:
            self._lock_size(conn, size)
            taken = self._db.run(
                conn,
                "SELECT 1 FROM files AS twin WHERE size = %(size)s AND id != %(id)s"
                f" AND {_SIZE_TAKEN} LIMIT 1",
                {"size": size, "id": file_id, **self._liveness()},
            ).fetchone()
            if taken is not None:
                return SizeClaim.TAKEN
            cur = self._db.run(
                conn,
                "UPDATE files SET content_claimed = 1, updated_at = %s"
                " WHERE id = %s AND lease_owner = %s AND host_id = %s",
                (self._clock(), file_id, owner, self._host()),
            )
            return SizeClaim.CLAIMED if cur.rowcount == 1 else SizeClaim.LOST
