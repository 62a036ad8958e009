"""Symbolic links in a watch folder: which are followed, and saying once why one is not."""

from __future__ import annotations

import os
import stat

from mavi_uploader.core import rules
from mavi_uploader.core.records import display_path
from mavi_uploader.log import get_logger

log = get_logger(__name__)


def link_target(path: str, root: str) -> tuple[os.stat_result | None, str]:
    """(stat of the file the link `path` leads to, "") when it is a regular file inside
    `root`, else (None, why not). A link may point anywhere: outside the root it could send
    private files the watch folder's owner never meant to upload."""
    if rules.relative_parts(os.path.realpath(path), os.path.realpath(root)) is None:
        return None, "it leads outside the watch folder"
    try:
        st = os.stat(path)
    except OSError as exc:
        return None, f"its target cannot be read: {exc.strerror}"
    if not stat.S_ISREG(st.st_mode):
        return None, "it does not lead to a regular file"
    return st, ""


class LinkNotices:
    """Logs each refused link once: a rescan meets the same links every hour, and a warning
    per rescan would bury the log (and one that is never said leaves people guessing)."""

    def __init__(self) -> None:
        self._told: set[str] = set()  # only watcher-thread code calls refused()

    def refused(self, path: str, reason: str) -> None:
        if path not in self._told:
            self._told.add(path)
            log.warning("symlink not followed", path=display_path(path), reason=reason)
