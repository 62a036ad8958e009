"""AVI (RIFF, and OpenDML's RIFF AVIX chain past 1 GB): is the file whole?

A writer fills in the RIFF size (and each AVIX's) and writes the index when it closes the
file: `idx1` at the end of the first RIFF, or for OpenDML an `indx` super index in the header
list (ffmpeg reserves its place as JUNK and turns it into `indx` on close). So: the RIFF chunks
tile the file exactly, and `idx1` or an `indx` with entries is present.
"""

from __future__ import annotations

import struct

from mavi_uploader.core.containers.source import (
    MAX_READ,
    Broken,
    Verdict,
    Window,
    complete,
    not_applicable,
)

MAX_RIFFS = 1_024  # an AVIX chunk holds about 1 GB
MAX_CHUNKS = 256  # chunks walked inside the first RIFF, or inside its header list


def is_avi(head: bytes) -> bool:
    return len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"AVI "


def _end(offset: int, length: int) -> int:
    return offset + 8 + length + (length & 1)  # chunks are padded to an even length


def check(window: Window, label: str) -> Verdict:
    """Complete, or raises Broken with the reason."""
    offset = 0
    for riff in range(MAX_RIFFS):
        if offset == window.size:
            break
        head = window.read(offset, 12)
        form = b"AVI " if riff == 0 else b"AVIX"
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != form:
            raise Broken(f"{label} RIFF size says {offset} bytes, the file has {window.size}")
        length = struct.unpack("<I", head[4:8])[0]
        end = _end(offset, length)
        if end == window.size + 1:
            end = window.size  # an odd last chunk without its pad byte
        if end > window.size:
            says = offset + 8 + length
            raise Broken(f"{label} RIFF size says {says} bytes, the file has {window.size}")
        offset = end
    else:
        if offset != window.size:
            return not_applicable(f"{label} has more than {MAX_RIFFS} RIFF chunks")
    first_end = min(_end(0, struct.unpack("<I", window.read(4, 4))[0]), window.size)
    index = _index(window, first_end, label)
    if index is None:
        raise Broken(f"{label} has no index yet (no idx1 chunk or OpenDML indx)")
    return complete(f"{label} is complete: RIFF size matches and it has an {index} index")


def _index(window: Window, riff_end: int, label: str) -> str | None:
    """'idx1' or 'OpenDML indx' when the first RIFF has that index, None when neither."""
    offset = 12
    header_list: tuple[int, int] | None = None
    for _ in range(MAX_CHUNKS):
        if offset + 8 > riff_end:
            break
        head = window.read(offset, 12)
        tag, length = struct.unpack("<4sI", head[:8])
        if offset + 8 + length > riff_end:
            name = tag.decode("latin-1")
            raise Broken(f"{label} chunk {name!r} at byte {offset} runs past the end of its RIFF")
        if tag == b"idx1":
            return "idx1"
        if tag == b"LIST" and head[8:12] == b"hdrl":
            header_list = (offset + 12, offset + 8 + length)
        offset = _end(offset, length)
    if header_list is not None and _has_indx(window, *header_list):
        return "OpenDML indx"
    return None


def _has_indx(window: Window, start: int, end: int) -> bool:
    """Does a stream list in the header list [start, end) hold an `indx` with entries?"""
    data = window.read(start, min(end - start, MAX_READ))  # header lists are a few KB
    for body in _chunks(data, 0, len(data), b"LIST"):
        if data[body : body + 4] != b"strl":
            continue
        for indx in _chunks(data, body + 4, _list_end(data, body), b"indx"):
            entries = data[indx + 4 : indx + 8]  # after wLongsPerEntry, subtype and type
            if len(entries) == 4 and struct.unpack("<I", entries)[0] > 0:
                return True
    return False


def _list_end(data: bytes, body: int) -> int:
    return min(len(data), body + int.from_bytes(data[body - 4 : body], "little"))


def _chunks(data: bytes, start: int, end: int, tag: bytes) -> list[int]:
    """Where the bodies of the `tag` chunks in data[start:end] start."""
    found = []
    offset = start
    for _ in range(MAX_CHUNKS):
        if offset + 8 > end:
            break
        name, length = struct.unpack("<4sI", data[offset : offset + 8])
        if name == tag:
            found.append(offset + 8)
        offset = _end(offset, length)
    return found
