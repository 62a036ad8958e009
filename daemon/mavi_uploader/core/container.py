"""Is this video file's container complete? MP4/MOV/M4V/3GP, MXF, MKV/WebM and AVI.

Settle asks here before it queues a file: a file can hold still for longer than
`settle_seconds` and still be half-written (a camera that appends `moov` after a pause, an
MXF without its footer, a live MKV). Each check reads a few headers at offsets the format
gives it, through a `Reader`, never the whole file: a multi-GB file costs a handful of reads,
and no file, whatever its bytes, costs more than `MAX_READS` reads or `MAX_BYTES` bytes
(`containers/source.py`). Pure: no journal, no logging; the one IO is reading the file, and
asking the file system where its holes are: a file with a long unwritten range is not whole,
whatever its type (`first_hole`).

The type is chosen by the name's extension and the first bytes together: bytes of a checked
type are checked as that type whatever the name says (the reason then says what the name
claims); a checked extension whose bytes are some other type, or none we know, is not checked
(`NOT_APPLICABLE`, the reason says what was found), and neither are the types without a check
(MTS, MPG, FLV, WMV...): for them the settle rule and the writer probe decide alone.
"""

from __future__ import annotations

import dataclasses
import errno
import os

from mavi_uploader.core.containers import avi, mkv, mp4, mxf
from mavi_uploader.core.containers.source import (
    MAX_BYTES,
    MAX_READS,
    Broken,
    BytesReader,
    Completeness,
    OverBudget,
    Reader,
    Truncated,
    Verdict,
    Window,
    complete,
    incomplete,
    not_applicable,
)

__all__ = [
    "CHECKED_EXTENSIONS",
    "MAX_BYTES",
    "MAX_READS",
    "MIN_HOLE",
    "BytesReader",
    "Completeness",
    "FileReader",
    "Reader",
    "Verdict",
    "check",
    "complete",
    "first_hole",
    "incomplete",
    "not_applicable",
]

# extension -> (format, how reasons name it)
_BY_EXTENSION = {
    "mp4": ("mp4", "MP4"),
    "m4v": ("mp4", "M4V"),
    "mov": ("mp4", "MOV"),
    "3gp": ("mp4", "3GP"),
    "3g2": ("mp4", "3G2"),
    "mxf": ("mxf", "MXF"),
    "mkv": ("mkv", "MKV"),
    "webm": ("mkv", "WebM"),
    "avi": ("avi", "AVI"),
}
CHECKED_EXTENSIONS = frozenset(_BY_EXTENSION)
_LABEL = {"mp4": "MP4", "mxf": "MXF", "mkv": "MKV", "avi": "AVI"}
_MAGIC_LENGTH = {"mp4": 8, "mxf": 16, "mkv": 4, "avi": 12}
_HEAD = 256  # enough to tell every type below apart (a transport stream needs two packets)
_ASF = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
MIN_HOLE = 1024 * 1024  # an unwritten range this long or longer: see first_hole
_MAX_HOLES = 16


class FileReader:
    """A Reader over an open file descriptor (pread: the one IO of this module)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def read_at(self, offset: int, length: int) -> bytes:
        return os.pread(self._fd, length, offset)


def check(source: str | os.PathLike[str] | Reader, size: int, name: str | None = None) -> Verdict:
    """Is the container of this file, `size` bytes as last seen, complete?

    Args:
        source: the file's path, or a Reader over its bytes.
        size: the size settle observed; bytes past it are not looked at.
        name: the file name whose extension says what it claims to be (default: the path).

    Raises OSError when the file cannot be opened or read.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        # O_NONBLOCK: a FIFO under a video's name must not block the open (its read fails).
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            hole = first_hole(fd, size)
            if hole is not None:
                start, length = hole
                return incomplete(
                    f"the file has an unwritten range at byte {start} ({length} bytes): "
                    "a download or copy still filling it"
                )
            return _check(FileReader(fd), size, path if name is None else name)
        finally:
            os.close(fd)
    return _check(source, size, name)


def first_hole(fd: int, size: int) -> tuple[int, int] | None:
    """The first hole of at least MIN_HOLE bytes in the file's first `size` bytes, as (start,
    length), or None (also where the system or file system cannot say).

    A file preallocated at its full size and filled out of order (a BitTorrent client fetches
    the first and last pieces first; fallocate'd ranges not yet written read as holes too) has
    its head and tail, so its container looks whole while its middle is not written. Asking
    the file system where its holes are costs a metadata call or two, no read. Smaller holes
    are passed over: ZFS with compression stores an all-zero record as a hole, and a video
    holds a few zero-filled records (padding, `free` boxes, KLV fill) but practically never a
    whole MiB of zeros. A few holes are looked at, not all: enough to pass over such
    records without walking a file that is mostly them.
    """
    seek_hole, seek_data = getattr(os, "SEEK_HOLE", None), getattr(os, "SEEK_DATA", None)
    if seek_hole is None or seek_data is None:
        return None
    offset = 0
    try:
        for _ in range(_MAX_HOLES):
            start = os.lseek(fd, offset, seek_hole)
            if start >= size:
                return None  # the hole every file has at its end, or one past what we look at
            try:
                data = os.lseek(fd, start, seek_data)
            except OSError as no_data:
                if no_data.errno != errno.ENXIO:
                    raise
                data = size  # the hole runs to the end of the file
            length = min(data, size) - start
            if length >= MIN_HOLE:
                return start, length
            offset = data
    except OSError:
        return None  # EINVAL, ENXIO, ESPIPE (a FIFO): no answer, the bytes decide alone
    return None


def _check(reader: Reader, size: int, name: str | None) -> Verdict:
    ext = os.path.splitext(name or "")[1].lower().lstrip(".")
    claimed = _BY_EXTENSION.get(ext)
    try:
        return _judge(Window(reader, max(size, 0)), ext, claimed)
    except Broken as finding:
        return incomplete(str(finding))
    except Truncated as shrank:
        return incomplete(f"the file changed while it was checked ({shrank})")
    except OverBudget:
        what = claimed[1] if claimed else "the file"
        return not_applicable(f"{what} needs more than {MAX_READS} reads to check")


def _judge(window: Window, ext: str, claimed: tuple[str, str] | None) -> Verdict:
    if window.size == 0:
        return incomplete("the file is empty") if claimed else not_applicable("the file is empty")
    head = window.read(0, _HEAD)
    found = _identify(head, claimed)
    run_in = 0
    if found is None and claimed is not None and claimed[0] == "mxf":
        run_in = mxf.find_run_in(window) or 0
        found = "mxf" if run_in else None
    if found is None:
        return _unchecked(window, head, ext, claimed)
    if claimed is not None and claimed[0] == found:
        label, note = claimed[1], ""
    else:
        label = _LABEL[found]
        note = f" (named .{ext}, holds {label})" if ext else ""
    try:
        if found == "mp4":
            verdict = mp4.check(window, label)
        elif found == "mxf":
            verdict = mxf.check(window, label, run_in)
        elif found == "mkv":
            verdict = mkv.check(window, label)
        else:
            verdict = avi.check(window, label)
    except Broken as finding:
        raise Broken(f"{finding}{note}") from None
    return dataclasses.replace(verdict, reason=verdict.reason + note)


def _identify(head: bytes, claimed: tuple[str, str] | None) -> str | None:
    """The checked format these first bytes are, if any."""
    if head.startswith(mkv.MAGIC):
        return "mkv"
    if avi.is_avi(head):
        return "avi"
    if mxf.is_header_key(head):
        return "mxf"
    if mp4.looks_like_box(head, strict=True):
        return "mp4"
    if claimed is not None and claimed[0] == "mp4" and _other_type(head) is None:
        # Any box header will do when the name says MP4 (a QuickTime file may start with
        # 'uuid', a segment with 'sidx'...), unless the bytes are a type we know.
        return "mp4" if mp4.looks_like_box(head, strict=False) else None
    return None


def _other_type(head: bytes) -> str | None:
    """What unchecked type these first bytes are, if we know it."""
    if head[:1] == b"\x47" and (len(head) <= 188 or head[188] == 0x47):
        return "an MPEG transport stream"
    if head[4:5] == b"\x47" and (len(head) <= 196 or head[196] == 0x47):
        return "an MPEG transport stream (M2TS)"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "an MPEG program stream"
    if head.startswith(b"FLV\x01"):
        return "FLV"
    if head.startswith(_ASF):
        return "ASF (WMV)"
    if head.startswith(b"RIFF") and len(head) >= 12:
        return f"RIFF {head[8:12]!r}"
    return None


def _unchecked(window: Window, head: bytes, ext: str, claimed: tuple[str, str] | None) -> Verdict:
    other = _other_type(head)
    if claimed is None:
        what = other or (f".{ext} files" if ext else "a file without an extension")
        return not_applicable(f"no container check for {what}")
    family, label = claimed
    if window.size < _MAGIC_LENGTH[family]:
        return incomplete(f"{label} is only {window.size} bytes long so far")
    found = other or f"not {label} (it starts with {head[:8].hex(' ')})"
    return not_applicable(f"named .{ext} but {'holds ' if other else 'is '}{found}: not checked")
