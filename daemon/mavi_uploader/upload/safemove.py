"""Moving and deleting one exact file (an open, pinned inode) without ever replacing another.

Editors re-export by renaming a new file over the old name, possibly while we copy a 20 GB
original to another disk. Everything here acts on the inode that was checked, not on
whatever the name points to by then, and never overwrites a file already in done_dir.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

COPY_CHUNK = 1 << 20
# Errors of os.link on file systems without hard links (FAT, exFAT, some network shares).
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}


class Replaced(Exception):
    """The name no longer points at the pinned file (a new version took its place)."""


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def unlink_if_same(path: Path, pinned: os.stat_result) -> bool:
    """Remove `path` if it is still the pinned file; False if it is gone or was replaced."""
    try:
        if not same_file(os.lstat(path), pinned):
            return False
    except FileNotFoundError:
        return False
    os.unlink(path)
    return True


def _names(wanted: Path) -> Iterator[Path]:
    yield wanted
    for n in range(2, 10_000):
        yield wanted.with_name(f"{wanted.stem} ({n}){wanted.suffix}")


def _give_name(source: Path, wanted: Path) -> Path:
    """Link `source` as `wanted`, or the first free `wanted (n)`; never replaces a file. On a
    file system without hard links it renames instead (then `source` is gone)."""
    for candidate in _names(wanted):
        try:
            os.link(source, candidate, follow_symlinks=False)
            return candidate
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            if os.path.lexists(candidate):
                continue
            os.rename(source, candidate)
            return candidate
    raise FileExistsError(errno.EEXIST, "no free name", str(wanted))


def _copy_beside(src: BinaryIO, pinned: os.stat_result, wanted: Path) -> Path:
    """A whole, fsynced copy of `src` under a hidden name next to `wanted`: a crash mid-copy
    never leaves a partial file under a real name."""
    partial = wanted.with_name(f".{wanted.name}.mavi-partial")
    src.seek(0)
    with open(partial, "wb") as dst:
        shutil.copyfileobj(src, dst, COPY_CHUNK)
        dst.flush()
        os.fsync(dst.fileno())
    os.chmod(partial, stat.S_IMODE(pinned.st_mode))
    os.utime(partial, ns=(pinned.st_atime_ns, pinned.st_mtime_ns))
    return partial


def move_pinned(src: BinaryIO, path: Path, wanted: Path) -> tuple[Path, bool]:
    """Move the file open as `src` (found at `path`) to `wanted` or a free name next to it.

    Returns (where it went, whether `path` was removed: False when a new version had taken
    the name during a copy; the uploaded version then lives on in done_dir). Raises Replaced
    if the name already pointed elsewhere when we moved it (nothing is changed then).
    """
    pinned = os.fstat(src.fileno())
    if not os.access(path.parent, os.W_OK | os.X_OK):
        # Checked first: otherwise a cross-device copy would be made, and then be orphaned.
        raise PermissionError(errno.EACCES, "cannot remove files from", str(path.parent))
    wanted.parent.mkdir(parents=True, exist_ok=True)
    if os.stat(wanted.parent).st_dev == pinned.st_dev:
        target = _give_name(path, wanted)
        if not same_file(os.lstat(target), pinned):  # the name was re-pointed before we acted
            if os.path.lexists(path):
                os.unlink(target)  # linked: drop our extra name
            else:
                os.rename(target, path)  # renamed: put it back
            raise Replaced(str(path))
        return target, unlink_if_same(path, pinned) or not os.path.lexists(path)
    partial = _copy_beside(src, pinned, wanted)
    target = _give_name(partial, wanted)
    if os.path.lexists(partial):
        os.unlink(partial)
    try:
        removed = unlink_if_same(path, pinned)
    except OSError:
        os.unlink(target)  # the original stays: one copy of the file, not two
        raise
    return target, removed
