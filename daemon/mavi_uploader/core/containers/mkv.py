"""MKV and WebM (EBML): is the file whole?

A Matroska writer starts the Segment with an unknown size (all ones) and writes the real size
when it closes the file; a live recording, or one written to a pipe, keeps the unknown size.
So: the top-level elements (the EBML header, then the Segment, maybe more of both, and Void
padding) must tile the file exactly, and no Segment may have an unknown size.
"""

from __future__ import annotations

from mavi_uploader.core.containers.source import Broken, Verdict, Window, complete, not_applicable

MAGIC = b"\x1a\x45\xdf\xa3"
EBML = 0x1A45DFA3
SEGMENT = 0x18538067
VOID = 0xEC
CRC32 = 0xBF
_NAMES = {EBML: "EBML header", SEGMENT: "segment"}
MAX_ELEMENTS = 64  # top-level elements walked: a header and a segment, usually


def _vint(data: bytes, at: int, *, keep_marker: bool) -> tuple[int | None, int] | None:
    """An EBML variable-size integer at `data[at:]`: (value or None when all ones, its length),
    or None when `data` ends first or it is longer than 8 bytes."""
    if at >= len(data) or data[at] == 0:
        return None
    width = 9 - data[at].bit_length()  # 1xxx xxxx is one byte, 01xx xxxx two...
    if at + width > len(data):
        return None
    raw = int.from_bytes(data[at : at + width], "big")
    if keep_marker:
        return raw, width
    value = raw & ((1 << (7 * width)) - 1)
    return (None if value == (1 << (7 * width)) - 1 else value), width


def check(window: Window, label: str) -> Verdict:
    """Complete, or raises Broken with the reason (`label`: MKV or WebM)."""
    offset = 0
    segments = 0
    for index in range(MAX_ELEMENTS):
        if offset == window.size:
            break
        head = window.read(offset, 12)  # an ID (1-4 bytes) and a size (1-8 bytes)
        parsed = _vint(head, 0, keep_marker=True)
        if parsed is None and head[:1] not in (b"", b"\x00"):
            raise Broken(f"{label} ends inside an element header at byte {offset}")
        if parsed is None or parsed[1] > 4:
            raise Broken(f"{label} has no valid element at byte {offset}")
        element, id_width = parsed
        sized = _vint(head, id_width, keep_marker=False)
        if sized is None:
            raise Broken(f"{label} ends inside an element header at byte {offset}")
        length, size_width = sized
        assert element is not None  # an ID keeps its marker bit: never None
        data = offset + id_width + size_width
        name = _NAMES.get(element, f"element 0x{element:X}")
        if index == 0 and element != EBML:
            raise Broken(f"{label} does not start with an EBML header")
        if element not in (EBML, SEGMENT, VOID, CRC32):
            raise Broken(f"{label} has an unexpected top-level element 0x{element:X} at {offset}")
        if length is None:
            if element == SEGMENT:
                raise Broken(f"{label} segment size is unknown (live recording)")
            raise Broken(f"{label} {name} at byte {offset} has an unknown size")
        if data + length > window.size:
            left = window.size - data
            raise Broken(
                f"{label} {name} runs past the end of the file "
                f"(declares {length} bytes, {max(left, 0)} left)"
            )
        segments += element == SEGMENT
        offset = data + length
    else:
        if offset != window.size:
            return not_applicable(f"{label} has more than {MAX_ELEMENTS} top-level elements")
    if segments == 0:
        raise Broken(f"{label} has no segment yet")
    return complete(f"{label} is complete: its segment size matches the file")
