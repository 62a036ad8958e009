"""What a file named on the command line is: a file ID, or a path (all of its generations).

Apart from `commands.py` because `history` needs it and must not import what enqueue does
(the watch rules, the container checks)."""

from __future__ import annotations

import os

from mavi_uploader.core.records import FileRecord
from mavi_uploader.journal import JournalStore


def find(journal: JournalStore, target: str) -> list[FileRecord]:
    """A target is a file ID, or a path (all of its generations)."""
    if target.isdigit() and not os.path.exists(target):
        found = journal.get(int(target))
        return [found] if found else []
    return journal.by_path(os.path.abspath(target))
