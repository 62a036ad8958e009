"""Is the file still the version the journal describes, and open for writing nowhere?"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from mavi_uploader.core.records import FileRecord, Observation
from mavi_uploader.core.writers import Probe
from mavi_uploader.journal import JournalStore

CHANGED_SINCE_QUEUED = "file changed since it was queued"


class FileChanged(Exception):
    """The file on disk no longer matches what was queued or sent."""


class WriterActive(FileChanged):
    """A process holds the file open for writing: it may not be finished (a paused camera)."""


def check_unchanged(
    rec: FileRecord, probe: Probe, held: BinaryIO | None = None, why: str = CHANGED_SINCE_QUEUED
) -> None:
    """The file (the `held` one, else whatever is at its path) is the version queued and
    open for writing nowhere (`enqueue` skips settle; a writer may open it again)."""
    st = os.fstat(held.fileno()) if held is not None else os.stat(rec.path)
    if not rec.describes(st):
        raise FileChanged(why)
    if (writer := probe(held.fileno() if held is not None else rec.path)) is not None:
        raise WriterActive(writer.reason)


def sight_if_rewritten(journal: JournalStore, rec: FileRecord) -> None:
    """A version written while `rec` was in flight was not journaled then (the row was
    busy): journal it now, as a new generation."""
    try:
        st = os.stat(rec.path)
    except OSError:
        return
    if stat.S_ISREG(st.st_mode) and not rec.describes(st):
        seen = Observation(rec.path, rec.watch_root or "", st.st_size, st.st_mtime_ns)
        journal.sight([seen])
