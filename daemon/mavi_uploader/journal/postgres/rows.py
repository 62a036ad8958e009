"""Rows of the fleet's journal as records this host can use (its own paths)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg.rows import DictRow

from mavi_uploader.core.records import Event, FileRecord
from mavi_uploader.core.states import State
from mavi_uploader.journal.postgres.places import Places, share_of


def to_record(row: Mapping[str, Any], places: Places) -> FileRecord:
    data: dict[str, Any] = dict(row)
    scope = data.pop("scope")
    data["path"] = places.shown(scope, data["path"])
    root = data["watch_root"]
    data["watch_root"] = places.shown(scope, root) if root is not None else None
    data["state"] = State(data["state"])
    data["after_upload_due"] = bool(data["after_upload_due"])
    data["content_claimed"] = bool(data["content_claimed"])
    data["share"] = share_of(scope)
    return FileRecord(**data)


def to_event(row: DictRow) -> Event:
    return Event(
        id=row["id"],
        file_id=row["file_id"],
        at=row["at"],
        from_state=State(row["from_state"]) if row["from_state"] else None,
        to_state=State(row["to_state"]),
        reason=row["reason"],
        host_id=row["host_id"],
    )
