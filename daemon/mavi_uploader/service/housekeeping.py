"""Housekeeping: journal retention, and after_upload a crash or a failure left owed."""

from __future__ import annotations

import os
import time

from mavi_uploader.config.model import Config
from mavi_uploader.core.records import FileRecord
from mavi_uploader.journal import JournalStore as Journal
from mavi_uploader.log import get_logger
from mavi_uploader.upload.aftercare import Aftercare

log = get_logger(__name__)
DAY = 86400.0


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


def finish_owed_after_upload(journal: Journal, config: Config, grace_seconds: float) -> None:
    """Carry out the moves/deletes a stop or a failure left owed (rows finished longer than
    `grace_seconds` ago: a younger one may still be in its worker's hands)."""
    finished = Aftercare(journal, config.after_upload, config.done_dir).sweep(grace_seconds)
    if finished:
        log.info("finished after_upload left owed by a stop or a failure", count=finished)


def tidy(journal: Journal, config: Config, sweep_grace: float) -> None:
    """The periodic job: owed after_upload first, then retention."""
    finish_owed_after_upload(journal, config, sweep_grace)
    removed = prune(journal, config.keep_done_days)
    if removed:
        log.info("journal retention", removed=removed, keep_done_days=config.keep_done_days)
