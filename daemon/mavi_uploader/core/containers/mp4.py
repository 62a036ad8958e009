"""MP4, MOV, M4V, 3GP (ISO base media / QuickTime): is the file whole?

A writer that is not done has either no `moov` yet (it comes last, after `mdat`), or a box
whose declared size runs past what is on disk, or (`mdat` written with size 0, "to the end of
the file") no `moov` after it. So: the top-level boxes must tile the file exactly and one of
them must be `moov`. A `moov` in front of its media (a "fast start" file, or one being copied)
can be whole while the media is not: each track's last chunk must lie inside the file, from
where it starts to where its samples end (`mp4_tables`).

A fragmented file (`moov` holding `mvex`, then `moof`/`mdat` pairs) is whole at every
fragment boundary: it is complete when the boxes tile the file and the last `moof` has its
`mdat` after it. A live recorder may append a fragment at a time, closing the file after
each, so a close proves nothing: the verdict is final only when an `mfra` box (the random
access index a muxer such as ffmpeg writes last, on close) follows the last fragment.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from mavi_uploader.core.containers import mp4_tables
from mavi_uploader.core.containers.mp4_tables import Box
from mavi_uploader.core.containers.source import (
    MAX_READ,
    Broken,
    Verdict,
    Window,
    complete,
    not_applicable,
)

MAX_BOXES = 8_000  # top-level boxes walked: a few for a plain file, two per fragment
MAX_CHILDREN = 256  # children of one box walked (a moov's tracks, a stbl's tables)
MAX_TRACKS = 64
# First box of a file we recognise as this family whatever its name says.
MAGIC_TYPES = frozenset({b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot", b"styp"})
# Other boxes ISO BMFF and QuickTime allow at the top level.
TOP_LEVEL_TYPES = frozenset(
    {b"uuid", b"moof", b"mfra", b"sidx", b"ssix", b"prft", b"meta", b"emsg", b"junk", b"PICT"}
)


def looks_like_box(head: bytes, *, strict: bool) -> bool:
    """Do the first bytes of a file read as a box header (`strict`: of a known first type)?"""
    if len(head) < 8:
        return False
    size = struct.unpack(">I", head[:4])[0]
    if size not in (0, 1) and size < 8:
        return False
    if strict:
        return head[4:8] in MAGIC_TYPES
    # A file named MP4 may open with any top-level box, but one of a known type: four random
    # printable bytes (2% of random files) must not make a file "MP4" that is not.
    return head[4:8] in MAGIC_TYPES | TOP_LEVEL_TYPES


def _printable(kind: bytes) -> bool:
    return all(0x20 <= b <= 0x7E for b in kind)


def box_at(window: Window, offset: int, limit: int, what: str) -> Box:
    """The box whose header is at `offset` and which must end by `limit`."""
    head = window.read(offset, 16)
    if len(head) < 8 or offset + 8 > limit:
        raise Broken(f"{what} ends inside a box header at byte {offset}")
    size, raw = struct.unpack(">I4s", head[:8])
    if not _printable(raw):
        raise Broken(f"{what} has no box at byte {offset} (found type {raw!r})")
    kind = raw.decode("ascii")
    body = offset + 8
    if size == 1:
        if len(head) < 16 or offset + 16 > limit:
            raise Broken(f"{what} ends inside the header of box '{kind}' at byte {offset}")
        size = struct.unpack(">Q", head[8:16])[0]
        body = offset + 16
    elif size == 0:
        size = limit - offset  # "to the end of the file" (or of its parent)
    if size < body - offset:
        raise Broken(f"{what} box '{kind}' at byte {offset} has an impossible size ({size})")
    if offset + size > limit:
        left = limit - offset
        raise Broken(
            f"{what} box '{kind}' runs past the end of the file "
            f"(declares {size} bytes, {left} left)"
            if limit == window.size
            else f"{what} box '{kind}' at byte {offset} runs past the end of its parent box"
        )
    return Box(kind, offset, body, offset + size)


def children(window: Window, parent: Box, what: str) -> Iterator[Box]:
    """The boxes inside `parent`, in order (at most MAX_CHILDREN)."""
    offset = parent.body
    for _ in range(MAX_CHILDREN):
        if offset + 8 > parent.end:
            return
        box = box_at(window, offset, parent.end, what)
        yield box
        offset = box.end


def child(window: Window, parent: Box, kind: str, what: str) -> Box | None:
    return next((b for b in children(window, parent, what) if b.kind == kind), None)


def check(window: Window, label: str) -> Verdict:
    """Complete, or raises Broken with the reason (`label` names the type: MP4, MOV...)."""
    boxes = _top_level(window, label)
    if boxes is None:
        return not_applicable(f"{label} has more than {MAX_BOXES} top-level boxes to check")
    moov = next((b for b in boxes if b.kind == "moov"), None)
    if moov is None:
        raise Broken(f"{label} has no moov box yet")
    window.read(moov.start, min(moov.end - moov.start, MAX_READ))  # one read serves the walk
    kinds = [b.kind for b in boxes]
    if "moof" in kinds or child(window, moov, "mvex", label) is not None:
        if "moof" not in kinds:
            raise Broken(f"{label} is fragmented but has no fragment (moof box) yet")
        last = len(kinds) - 1 - kinds[::-1].index("moof")
        if "mdat" not in kinds[last + 1 :]:
            raise Broken(f"{label} fragment at byte {boxes[last].start} has no mdat box yet")
        count = kinds.count("moof")
        fragments = f"{count} fragment{'' if count == 1 else 's'}"
        if "mfra" in kinds[last + 1 :]:
            return complete(
                f"{label} is complete: {fragments} and moov tile the file, closed by an mfra box"
            )
        return complete(
            f"{label} is complete to its last fragment ({fragments}); more may follow: no mfra box",
            final=False,
        )
    _media_inside(window, moov, label)
    return complete(f"{label} is complete: {len(boxes)} top-level boxes with a moov tile the file")


def _top_level(window: Window, label: str) -> list[Box] | None:
    boxes: list[Box] = []
    offset = 0
    for _ in range(MAX_BOXES):
        if offset == window.size:
            return boxes
        box = box_at(window, offset, window.size, label)
        boxes.append(box)
        offset = box.end
    return boxes if offset == window.size else None


def _media_inside(window: Window, moov: Box, label: str) -> None:
    """Each track's last chunk lies inside the file (a moov can precede missing media)."""
    tracks = (b for b in children(window, moov, label) if b.kind == "trak")
    for number, trak in enumerate(tracks, start=1):
        if number > MAX_TRACKS:
            return
        box: Box | None = trak
        for kind in ("mdia", "minf", "stbl"):
            box = child(window, box, kind, label) if box is not None else None
        if box is None:
            continue  # no sample table: nothing of this track's media to look for
        tables: dict[str, Box] = {}
        for table in children(window, box, label):
            if table.kind in mp4_tables.KINDS:
                tables.setdefault(table.kind, table)
        last = mp4_tables.last_chunk(window, tables, f"{label} track {number}")
        if last is None:
            continue
        if last.start >= window.size:
            raise Broken(
                f"{label} track {number} has media at byte {last.start}, "
                f"past the end of the file ({window.size} bytes)"
            )
        if last.end is not None and last.end > window.size:
            raise Broken(
                f"{label} track {number}'s last chunk ends at byte {last.end}"
                f"{'' if last.exact else ' or later'}, "
                f"past the end of the file ({window.size} bytes)"
            )
