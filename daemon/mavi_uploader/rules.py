"""Pure rules: is this path a candidate video under a watch root?"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Collection, Sequence

# Names no video tool means as an upload: AppleDouble resource forks and OS litter.
_ALWAYS_IGNORED = ("._*", ".DS_Store", "Thumbs.db", "desktop.ini")


def relative_parts(path: str, root: str) -> list[str] | None:
    """Components of `path` below `root`, or None when it is not strictly inside it."""
    root = os.path.normpath(root)
    path = os.path.normpath(path)
    if os.path.commonpath([root, path]) != root or path == root:
        return None
    return os.path.relpath(path, root).split(os.sep)


def ignored_by(name: str, ignore: Sequence[str]) -> str | None:
    """The glob that ignores `name` (one path component), if any."""
    for pattern in (*_ALWAYS_IGNORED, *ignore):
        if fnmatch.fnmatchcase(name, pattern):
            return pattern
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
    for part in parts:
        pattern = ignored_by(part, ignore)
        if pattern is not None:
            return f"ignored by pattern {pattern!r}"
    name = parts[-1]
    ext = os.path.splitext(name)[1].lower().lstrip(".")
    if ext not in extensions:
        return f"extension {ext or '(none)'!r} is not in the configured extensions"
    return None


def is_candidate(
    path: str,
    root: str,
    *,
    extensions: Collection[str],
    ignore: Sequence[str],
    recursive: bool,
) -> bool:
    return rejection(path, root, extensions=extensions, ignore=ignore, recursive=recursive) is None
