"""Dedupe in the journal: the first row to claim some content is the one that uploads it."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable

from mavi_uploader.core.records import FileRecord
from mavi_uploader.core.states import State
from mavi_uploader.journal.api import ContentClaim, SizeClaim
from mavi_uploader.journal.sql import HOLDS, SIZE_TAKEN, one, same_content
from mavi_uploader.journal.sqlite.reads import to_record

_DONE, _FAILED = one(State.DONE), one(State.FAILED)
_SIZE_OF_ID = "(SELECT size FROM files WHERE id = :id)"


class JournalDedupe:
    """The content claim; `Journal` provides the connection, transactions and clock."""

    _clock: Callable[[], float]

    def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def claim_content(
        self, file_id: int, sha256: str, owner: str, *, max_sends: int
    ) -> tuple[ContentClaim, FileRecord | None]:
        """One transaction: a done twin, a twin holding the content, a failed twin that had
        more than `max_sends` complete uploads, or else our row claims the content (its
        sha256 written now, so a copy hashed a moment later sees it, whichever is older)."""
        with self._tx() as conn:
            twin = conn.execute(
                f"SELECT * FROM files AS twin WHERE {same_content(':sha', _SIZE_OF_ID)}"
                " AND id != :id"
                f" AND (state = {_DONE} OR {HOLDS} OR (state = {_FAILED} AND sends > :max))"
                f" ORDER BY state = {_DONE} DESC, state = {_FAILED}, id LIMIT 1",
                {"sha": sha256, "id": file_id, "max": max_sends},
            ).fetchone()
            if twin is not None:
                found = {
                    State.DONE.value: ContentClaim.UPLOADED,
                    State.FAILED.value: ContentClaim.SPENT,
                }.get(twin["state"], ContentClaim.IN_FLIGHT)
                return found, to_record(twin)
            cur = conn.execute(
                "UPDATE files SET sha256 = ?, content_claimed = 1, updated_at = ?"
                " WHERE id = ? AND lease_owner = ?",
                (sha256, self._clock(), file_id, owner),
            )
            return (ContentClaim.CLAIMED if cur.rowcount == 1 else ContentClaim.LOST), None

    def claim_size(self, file_id: int, size: int, owner: str) -> SizeClaim:
        """One transaction: another row that might hold a copy (see `sql.size_taken`), or
        else our row holds every content of its size until its hash is known."""
        with self._tx() as conn:
            taken = conn.execute(
                f"SELECT 1 FROM files AS twin WHERE size = ? AND id != ? AND {SIZE_TAKEN} LIMIT 1",
                (size, file_id),
            ).fetchone()
            if taken is not None:
                return SizeClaim.TAKEN
            cur = conn.execute(
                "UPDATE files SET content_claimed = 1, updated_at = ?"
                " WHERE id = ? AND lease_owner = ?",
                (self._clock(), file_id, owner),
            )
            return SizeClaim.CLAIMED if cur.rowcount == 1 else SizeClaim.LOST
