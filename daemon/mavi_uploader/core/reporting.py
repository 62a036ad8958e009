"""How a file row reads to a person: times, upload progress, what MAVI has been saying.

Pure functions over records, shared by the reports (cli) and the daemon's own progress and
log lines.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from mavi_uploader.core.decisions import NOT_FOUND
from mavi_uploader.core.handoffs import Handoff
from mavi_uploader.core.records import FileRecord, State, display_path
from mavi_uploader.redaction import redact


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="seconds")


def upload_progress(rec: FileRecord, now: float) -> dict[str, Any]:
    """Percent, speed and ETA of an upload, from the progress the worker journals."""
    size = rec.size or 0
    sent = rec.bytes_sent if rec.upload_started_at else 0
    elapsed = (rec.progress_at or now) - (rec.upload_started_at or now)
    speed = sent / elapsed if elapsed > 0 and sent else None
    return {
        "id": rec.id,
        "path": display_path(rec.path),
        "size": size,
        "bytes_sent": sent,
        "percent": round(100.0 * sent / size, 1) if size else None,
        "speed_bytes_per_second": round(speed) if speed else None,
        "eta_seconds": round((size - sent) / speed) if speed else None,
    }


def mavi_says(rec: FileRecord) -> str | None:
    """What MAVI has been answering about a confirming file, and since when."""
    if rec.state is not State.CONFIRMING or not rec.mavi_status:
        return None
    said = (
        "MAVI does not know the asset yet"
        if rec.mavi_status == NOT_FOUND
        else f"MAVI reports {rec.mavi_status}"
    )
    return f"{said} since {iso(rec.mavi_status_since)}"


def file_document(rec: FileRecord, owed: Sequence[Handoff] = ()) -> dict[str, Any]:
    """A file as `list --json` shows it, and as a webhook sends it (`owed`: its hand-offs
    not delivered yet)."""
    return {
        "id": rec.id,
        "path": display_path(rec.path),
        "state": rec.state.value,
        "size": rec.size,
        "sha256": rec.sha256,
        "asset_id": rec.asset_id,
        "attempts": rec.attempts,
        "last_error": redact(rec.last_error) if rec.last_error else None,
        "duplicate_of": rec.duplicate_of,
        "bytes_sent": rec.bytes_sent,
        "mavi_status": rec.mavi_status,
        "mavi_status_since": iso(rec.mavi_status_since),
        "next_attempt_at": iso(rec.next_attempt_at),
        "created_at": iso(rec.created_at),
        "updated_at": iso(rec.updated_at),
        "host_id": rec.host_id,  # fleet mode: who holds or finished it (None before a claim)
        "share": rec.share,  # fleet mode: the share it is on (None: a host's own folder)
        "handoffs_owed": [handoff_document(h) for h in owed],
    }


def handoff_document(handoff: Handoff, rec: FileRecord | None = None) -> dict[str, Any]:
    """One hand-off not delivered yet (`rec`: its file, for `status`, which lists its path)."""
    doc: dict[str, Any] = {"id": handoff.id, "file_id": handoff.file_id}
    if rec is not None:
        doc["path"] = display_path(rec.path)
    doc.update(
        kind=handoff.kind.value,
        event=handoff.event,
        attempts=handoff.attempts,
        last_error=redact(handoff.last_error) if handoff.last_error else None,
        next_attempt_at=iso(handoff.next_attempt_at),
    )
    return doc
