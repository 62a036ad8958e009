"""MXF (SMPTE ST 377-1): is the file whole?

An MXF writer starts with a header partition (often "open and incomplete": its metadata is not
final) and ends with a footer partition and a Random Index Pack (RIP), whose last 4 bytes give
its own length and whose entries give every partition's offset. A recording cut short, or one
still being written, has no footer and no RIP. So: the file ends with a RIP, its entries point
at partition packs, the last at the footer partition, which ends before the RIP.

Offsets in partition packs and the RIP count from the header partition's key, which may follow
a run-in of up to 64 KiB.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass

from mavi_uploader.core.containers.source import Broken, Verdict, Window, complete

# 06 0E 2B 34 02 05 01 01 0D 01 02 01 01, then the kind, the status and 00.
PARTITION_PREFIX = bytes.fromhex("060e2b34020501010d01020101")
HEADER, BODY, FOOTER = 0x02, 0x03, 0x04
RIP_KEY = bytes.fromhex("060e2b34020501010d01020101110100")
MAX_RUN_IN = 65_535
MAX_CHECKED_ENTRIES = 64  # RIP entries whose partitions are all looked at (else first and last)
_PACK_FIELDS = 88  # the fixed part of a partition pack, up to its essence container batch
_STATUS = {
    1: "open and incomplete",
    2: "closed but incomplete",
    3: "open but complete",
    4: "closed and complete",
}


@dataclass(frozen=True)
class Partition:
    kind: int
    status: int
    start: int  # where its key is, in the file
    end: int  # where the pack ends
    this: int  # the offsets the pack states, from the header partition
    footer: int
    header_bytes: int
    index_bytes: int


def is_header_key(key: bytes) -> bool:
    return key[:13] == PARTITION_PREFIX and key[13:14] == bytes([HEADER])


def find_run_in(window: Window) -> int | None:
    """Where the header partition's key is (0, or after a run-in), or None if nowhere."""
    head = window.read(0, MAX_RUN_IN + 16)
    at = head.find(PARTITION_PREFIX + bytes([HEADER]))
    return at if 0 <= at <= MAX_RUN_IN else None


def _ber(data: bytes, at: int) -> tuple[int, int] | None:
    """A BER length at data[at:]: (value, bytes it took), or None if malformed or cut."""
    if at >= len(data):
        return None
    first = data[at]
    if first < 0x80:
        return first, 1
    width = first & 0x7F
    if width == 0 or width > 8 or at + 1 + width > len(data):
        return None  # 0x80 (indefinite) is not allowed in MXF
    return int.from_bytes(data[at + 1 : at + 1 + width], "big"), 1 + width


def partition_at(window: Window, offset: int) -> Partition | None:
    """The partition pack whose key is at `offset`, or None if there is none (whole)."""
    data = window.read(offset, 16 + 9 + _PACK_FIELDS)
    if len(data) < 16 or data[:13] != PARTITION_PREFIX or data[13] not in (HEADER, BODY, FOOTER):
        return None
    ber = _ber(data, 16)
    if ber is None or ber[0] < _PACK_FIELDS or data[15] != 0 or not 1 <= data[14] <= 4:
        return None
    length, width = ber
    end = offset + 16 + width + length
    fields = data[16 + width : 16 + width + 48]
    if end > window.size or len(fields) < 48:
        return None
    this, _previous, footer, header_bytes, index_bytes = struct.unpack(">5Q", fields[8:48])
    return Partition(data[13], data[14], offset, end, this, footer, header_bytes, index_bytes)


def check(window: Window, label: str, run_in: int) -> Verdict:
    """Complete, or raises Broken with the reason."""
    header = partition_at(window, run_in)
    if header is None or header.kind != HEADER:
        raise Broken(f"{label} header partition is not whole yet")
    rip = _rip(window, header)
    if rip is None:
        raise Broken(_why_no_rip(window, header, label, run_in))
    rip_start, count, entries = rip
    first, last = entries[0], entries[-1]
    if first != 0:
        raise Broken(f"{label} Random Index Pack does not start at the header partition")
    footer = partition_at(window, run_in + last)
    if footer is None or footer.kind != FOOTER:
        raise Broken(
            f"{label} has no footer partition where its Random Index Pack says "
            f"(byte {run_in + last})"
        )
    if footer.this != last:
        raise Broken(f"{label} footer partition says it is at {footer.this}, its RIP says {last}")
    if header.footer not in (0, last):
        raise Broken(f"{label} header partition says the footer is at {header.footer}, not {last}")
    if footer.end + footer.header_bytes + footer.index_bytes > rip_start:
        raise Broken(f"{label} footer partition runs into its Random Index Pack")
    if len(entries) > 2:
        for earlier, later in itertools.pairwise(entries):
            if later <= earlier:
                raise Broken(f"{label} Random Index Pack offsets are out of order")
        for offset in entries[1:-1]:
            if partition_at(window, run_in + offset) is None:
                raise Broken(f"{label} Random Index Pack points at byte {run_in + offset}, "
                             "where there is no partition")  # fmt: skip
    return complete(
        f"{label} is complete: footer partition and Random Index Pack ({count} partitions)"
    )


def _rip(window: Window, header: Partition) -> tuple[int, int, list[int]] | None:
    """The RIP at the end of the file: where it starts, how many partitions it lists and
    their offsets (all, or the first and last when there are many); None if there is none."""
    tail = window.exactly(window.size - 4, 4)
    if tail is None:
        return None
    length = struct.unpack(">I", tail)[0]
    start = window.size - length
    if length < 16 + 1 + 12 + 4 or start < header.end:
        return None
    head = window.read(start, 16 + 9)
    ber = _ber(head, 16)
    if head[:16] != RIP_KEY or ber is None or 16 + ber[1] + ber[0] != length:
        return None
    pairs, odd = divmod(ber[0] - 4, 12)
    if odd or pairs < 1:
        return None
    body = start + 16 + ber[1]
    if pairs <= MAX_CHECKED_ENTRIES:
        table = window.read(body, pairs * 12)
        offsets = [struct.unpack(">Q", table[i * 12 + 4 : i * 12 + 12])[0] for i in range(pairs)]
        return start, pairs, offsets
    first = window.read(body, 12)
    last = window.read(window.size - 16, 12)
    return start, pairs, [struct.unpack(">Q", p[4:12])[0] for p in (first, last)]


def _why_no_rip(window: Window, header: Partition, label: str, run_in: int) -> str:
    footer = partition_at(window, run_in + header.footer) if header.footer else None
    if footer is not None and footer.kind == FOOTER:
        return f"{label} has no Random Index Pack at its end"
    state = "" if header.status == 4 else f" (its header partition is {_STATUS[header.status]})"
    return f"{label} has no footer partition{state}"
