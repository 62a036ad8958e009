"""The `status --json` document: counts, uploads in flight, what MAVI says, recent errors.

Built here, below the CLI, because two readers print it: `status --json` and the daemon's
`GET /api/status` (service/httpd.py), which must agree byte for byte.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mavi_uploader.config.model import Config
from mavi_uploader.config.timetable import LocalClock
from mavi_uploader.core.records import HostInfo, State, display_path
from mavi_uploader.core.reporting import handoff_document, iso, mavi_says, upload_progress
from mavi_uploader.journal import JournalError, JournalStore
from mavi_uploader.redaction import redact
from mavi_uploader.service.lock import LockHolder

CONFIRMING_SHOWN = 20  # `status` lists this many files waiting for MAVI
SETTLING_SHOWN = 20  # ...and this many files held back from the queue, with the reason
HANDOFFS_SHOWN = 10  # ...and this many hand-offs owed, failing ones first


def status_document(
    state_dir: Path,
    journal: JournalStore | None,
    holder: LockHolder,
    *,
    kind: str = "sqlite",
    bandwidth: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The `status --json` object; `kind` is the journal named when there is none yet,
    `bandwidth` the config's limit in force (`bandwidth_document`)."""
    kind = journal.kind if journal else kind
    pause = journal.pause() if journal else None
    counts = journal.counts() if journal else {s.value: 0 for s in State}
    now = time.time()
    uploading = journal.in_states([State.UPLOADING]) if journal else []
    confirming = journal.in_states([State.CONFIRMING]) if journal else []
    held_back = [r for r in journal.in_states([State.SETTLING]) if r.last_error] if journal else []
    errors = journal.recent_errors() if journal else []
    doc: dict[str, Any] = {
        "state_dir": str(state_dir),
        "journal": kind,
        "daemon": {"running": holder.running, "pid": holder.pid},
        "paused": {"reason": redact(pause.reason), "since": iso(pause.since)} if pause else None,
        "counts": counts,
        "uploads": [upload_progress(r, now) for r in uploading],
        "confirming": [
            {
                "id": r.id,
                "path": display_path(r.path),
                "asset_id": r.asset_id,
                "mavi_status": r.mavi_status,
                "mavi_status_since": iso(r.mavi_status_since),
                "says": mavi_says(r),
            }
            for r in confirming[:CONFIRMING_SHOWN]
        ],
        # Settling files the settle tick holds back, and why: a writer, an incomplete container.
        "settling": [
            {
                "id": r.id,
                "path": display_path(r.path),
                "waiting_for": redact(r.last_error or ""),
                "since": iso(r.stable_since),
            }
            for r in held_back[:SETTLING_SHOWN]
        ],
        "recent_errors": [
            {
                "id": r.id,
                "path": display_path(r.path),
                "state": r.state.value,
                "error": redact(r.last_error or ""),
                "at": iso(r.updated_at),
            }
            for r in errors
        ],
    }
    doc["handoffs"] = handoffs_document(journal)
    if kind == "postgresql":  # fleet mode: every host sharing the journal, this one included
        doc["hosts"] = [host_document(h) for h in journal.hosts()] if journal else []
    if bandwidth is not None:
        doc["bandwidth"] = bandwidth
    return doc


def bandwidth_document(config: Config) -> dict[str, Any]:
    """bandwidth_limit as `status` shows it: the limit in force now ("2M", "off", "pause"),
    its bytes/s (null: unlimited or paused) and when it next changes (null: never)."""
    clock = LocalClock(config.timers.timetable_shift)
    force = config.bandwidth_limit.in_force(clock())
    limit = force.limit
    rate = None if limit.paused or limit.bytes_per_second == 0 else limit.bytes_per_second
    until = clock.real(force.until).isoformat(timespec="seconds") if force.until else None
    return {"limit": limit.label, "bytes_per_second": rate, "until": until}


def host_document(host: HostInfo) -> dict[str, Any]:
    return {
        "host_id": host.host_id,
        "pid": host.pid,
        "alive": host.alive,
        "last_seen": iso(host.last_seen),
        "uploading": [display_path(p) for p in host.uploading],
    }


def handoffs_document(journal: JournalStore | None) -> dict[str, Any]:
    """Hand-offs owed (on_done, webhook): how many, how many failed at least once, and the
    first few with their files, failing ones first."""
    owed, failing, recent = 0, 0, []
    try:
        if journal is not None:
            owed, failing = journal.handoff_counts()
            for handoff in journal.handoffs(limit=HANDOFFS_SHOWN) if owed else []:
                recent.append(handoff_document(handoff, journal.get(handoff.file_id)))
    except JournalError as exc:
        # A journal its daemon (an older build) has not migrated yet has no outbox: none owed.
        if not any(said in str(exc) for said in _NO_OUTBOX):
            raise
    return {"owed": owed, "failing": failing, "recent": recent}


_NO_OUTBOX = ("no such table: handoffs", 'relation "handoffs" does not exist')
