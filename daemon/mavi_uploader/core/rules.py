"""Pure rules: is this path a candidate video under a watch root?"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from collections.abc import Collection, Sequence

# Names no video tool means as an upload: AppleDouble resource forks and OS litter.
_ALWAYS_IGNORED = ("._*", ".DS_Store", "Thumbs.db", "desktop.ini")


def relative_parts(path: str, root: str) -> list[str] | None:
    """Components of `path` below `root`, or None when it is not strictly inside it."""
    root = os.path.normpath(root)
    path = os.path.normpath(path)
    prefix = root if root.endswith(os.sep) else root + os.sep  # "/" ends with one already
    if not path.startswith(prefix) or path == root:
        return None
    return path[len(prefix) :].split(os.sep)


@functools.lru_cache(maxsize=64)
def _ignore_matcher(ignore: tuple[str, ...]) -> re.Pattern[str]:
    """All ignore globs as one compiled pattern: a rescan tests every name against them."""
    patterns = (*_ALWAYS_IGNORED, *ignore)
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


def ignored_by(name: str, ignore: Sequence[str]) -> str | None:
    """The glob that ignores `name` (one path component), if any."""
    if not _ignore_matcher(tuple(ignore)).match(name):
        return None
    return next(p for p in (*_ALWAYS_IGNORED, *ignore) if fnmatch.fnmatchcase(name, p))


def name_rejection(name: str, *, extensions: Collection[str], ignore: Sequence[str]) -> str | None:
    """Why a file named `name` is not a candidate, judging the name alone (for paths whose
    folders were already checked, as in a rescan's walk)."""
    pattern = ignored_by(name, ignore)
    if pattern is not None:
        return f"ignored by pattern {pattern!r}"
    ext = os.path.splitext(name)[1].lower().lstrip(".")
    if ext not in extensions:
        return f"extension {ext or '(none)'!r} is not in the configured extensions"
    return None


def directory_ignored(path: str, root: str, ignore: Sequence[str], recursive: bool) -> bool:
    """Should a directory under `root` be skipped entirely (hidden, ignored, or too deep)?"""
    parts = relative_parts(path, root)
    if parts is None:
        return os.path.normpath(path) != os.path.normpath(root)
    if not recursive:
        return True
    return any(ignored_by(part, ignore) for part in parts)


def rejection(
    path: str,
    root: str,
    *,
    extensions: Collection[str],
    ignore: Sequence[str],
    recursive: bool,
) -> str | None:
    """Why `path` is not a candidate for upload, or None when it is one."""
    parts = relative_parts(path, root)
    if parts is None:
        return f"outside the watch folder {root}"
    if not recursive and len(parts) > 1:
        return f"in a subfolder and the watch on {root} is not recursive"
    for part in parts[:-1]:
        pattern = ignored_by(part, ignore)
        if pattern is not None:
            return f"ignored by pattern {pattern!r}"
    return name_rejection(parts[-1], extensions=extensions, ignore=ignore)
