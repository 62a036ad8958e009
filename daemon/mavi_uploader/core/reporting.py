"""How a file row reads to a person: times, upload progress, what MAVI has been saying.

Pure functions over records, shared by the reports (cli) and the daemon's own progress and
log lines.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from mavi_uploader.core.decisions import NOT_FOUND
from mavi_uploader.core.records import FileRecord, State, display_path


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
