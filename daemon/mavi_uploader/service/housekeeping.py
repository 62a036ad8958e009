"""Journal retention: finished files older than keep_done_days leave the journal."""

from __future__ import annotations

import os
import time

from mavi_uploader.core.records import FileRecord
from mavi_uploader.journal import JournalStore as Journal

DAY = 86400.0
PRUNE_EVERY_SECONDS = 3600.0


def still_on_disk(rec: FileRecord) -> bool:
    """Is the very file this row describes (same size and mtime) still at its path?"""
    try:
        st = os.stat(rec.path)
    except OSError:
        return False
    return rec.describes(st)


def prune(journal: Journal, keep_done_days: float, now: float | None = None) -> int:
    """Remove old finished rows; 0 days means keep everything. Returns rows removed."""
    if keep_done_days <= 0:
        return 0
    cutoff = (time.time() if now is None else now) - keep_done_days * DAY
    return journal.prune(cutoff, still_on_disk)
