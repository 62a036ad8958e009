"""An MP4 track's sample tables: where its last chunk starts and where it ends.

A `moov` in front of its media ("fast start") and an `mdat` of size 0 ("to the end of the
file") tile any prefix that reaches into the media, so the boxes cannot tell a copy cut
inside the last sample from a whole file. The sample tables can: the last chunk starts at
the last `stco`/`co64` entry, holds the samples per chunk of the last `stsc` entry, and
those are the track's last samples, whose sizes `stsz` gives (one size for all, or a table)
or `stz2` (a table of 4-, 8- or 16-bit sizes).

Only the entries needed are read (the last chunk offset, the last `stsc` entry, the tail of
the size table), a few small reads whatever the counts say. Tables that disagree with each
other (more samples in the last chunk than the track has) say nothing about the end: the
check then only asks that the last chunk start inside the file, as it did before.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from mavi_uploader.core.containers.source import Broken, Window

# Sizes read for one chunk: 4 KiB of stsz, within the read budget even for 64 tracks. A
# muxer puts tens of samples in a chunk (about a second of media); past this many the sum
# of the last ones is a lower bound of the chunk's size, which still catches most cuts.
MAX_TAIL_SAMPLES = 1024
KINDS = frozenset({"stco", "co64", "stsc", "stsz", "stz2"})


@dataclass(frozen=True)
class Box:
    kind: str
    start: int
    body: int  # where the payload starts, after the (32- or 64-bit) header
    end: int


@dataclass(frozen=True)
class LastChunk:
    start: int
    end: int | None  # None when the tables do not say (no stsc or sizes, or they disagree)
    exact: bool = True  # False: `end` is a lower bound (more than MAX_TAIL_SAMPLES samples)


def last_chunk(window: Window, tables: Mapping[str, Box], what: str) -> LastChunk | None:
    """The track's last chunk, from its sample tables (`what` names the track in reasons);
    None when it has no chunk. Raises Broken when a table's entries overrun its box."""
    offsets = next((t for kind, t in tables.items() if kind in ("stco", "co64")), None)
    if offsets is None:
        return None
    width = 4 if offsets.kind == "stco" else 8
    chunks = _entries(window, offsets, 8, width * 8, what)[1]
    if chunks == 0:
        return None
    start = int.from_bytes(_read(window, offsets.body + 8 + (chunks - 1) * width, width), "big")
    samples = _samples_in_last_chunk(window, tables.get("stsc"), chunks, what)
    size = None if samples is None else _size_of_last(window, tables, samples, what)
    if size is None:
        return LastChunk(start, None)
    return LastChunk(start, start + size[0], exact=size[1])


def _samples_in_last_chunk(window: Window, stsc: Box | None, chunks: int, what: str) -> int | None:
    if stsc is None:
        return None
    count = _entries(window, stsc, 8, 96, what)[1]
    if count == 0:
        return None
    entry = _read(window, stsc.body + 8 + (count - 1) * 12, 12)
    first_chunk, per_chunk = struct.unpack(">II", entry[:8])
    # The last entry runs from its first chunk to the last one: it must name a chunk there.
    return per_chunk if 1 <= first_chunk <= chunks else None


def _size_of_last(
    window: Window, tables: Mapping[str, Box], samples: int, what: str
) -> tuple[int, bool] | None:
    """The bytes of the track's last `samples` samples and whether that is exact (else a
    lower bound: the last MAX_TAIL_SAMPLES of them), or None when no size table says."""
    stsz, stz2 = tables.get("stsz"), tables.get("stz2")
    if stsz is not None:
        head, count = _entries(window, stsz, 12, 0, what)
        constant = int.from_bytes(head[4:8], "big")  # one size for all: no table follows
        if not constant:
            _entries(window, stsz, 12, 32, what)
        if samples > count:
            return None
        if constant:
            return samples * constant, True
        return _sum_tail(window, stsz, 12, 32, count, samples)
    if stz2 is not None:
        head, count = _entries(window, stz2, 12, 0, what)
        bits = head[7]
        if bits not in (4, 8, 16):
            raise Broken(f"{what} has a malformed stz2 box (entries of {bits} bits)")
        _entries(window, stz2, 12, bits, what)
        return None if samples > count else _sum_tail(window, stz2, 12, bits, count, samples)
    return None


def _sum_tail(
    window: Window, table: Box, head: int, bits: int, count: int, samples: int
) -> tuple[int, bool]:
    """The sum of the last `samples` of `count` entries of `bits` bits each, from one read of
    just those entries, and whether it is exact (it is of the last MAX_TAIL_SAMPLES only)."""
    first = count - min(samples, MAX_TAIL_SAMPLES)
    lo, hi = first * bits // 8, (count * bits + 7) // 8
    data = _read(window, table.body + head + lo, hi - lo)
    if bits == 32:
        total = sum(struct.unpack(f">{count - first}I", data))
    elif bits == 16:
        total = sum(struct.unpack(f">{count - first}H", data))
    elif bits == 8:
        total = sum(data)
    else:  # 4 bits: two entries a byte, the first in the high nibble
        total = sum((data[i // 2 - lo] >> (0 if i % 2 else 4)) & 0x0F for i in range(first, count))
    return total, samples <= MAX_TAIL_SAMPLES


def _entries(window: Window, table: Box, head: int, bits: int, what: str) -> tuple[bytes, int]:
    """The table's `head` bytes (version and flags, ..., entry count last) and its entry
    count, once its entries of `bits` bits are known to fit in the box."""
    data = window.exactly(table.body, head)
    count = struct.unpack(">I", data[-4:])[0] if data is not None else 0
    if data is None or table.body + head + (count * bits + 7) // 8 > table.end:
        raise Broken(f"{what} has a malformed {table.kind} box")
    return data, count


def _read(window: Window, offset: int, length: int) -> bytes:
    data = window.exactly(offset, length)
    if data is None:  # cannot be: the entries lie in their box, which lies in the file
        raise Broken(f"a sample table runs past the end of the file at byte {offset}")
    return data
