"""What every container check shares: the verdict, the reader interface and a bounded window.

A check never reads a whole file: it reads a few headers at offsets the format gives it.
`Window` stands between a check and its `Reader`: it clamps every read to the size the caller
observed, serves repeated reads from a few cached blocks, and counts what it reads, so that no
file, however large or malformed, costs more than `MAX_READS` reads and `MAX_BYTES` bytes.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

MAX_READ = 80 * 1024  # one read: a header region (an MXF run-in, an AVI header list, a moov)
MAX_READS = 8_192  # a fragmented MP4 reads one header per box; the other checks need a dozen
MAX_BYTES = 1024 * 1024
_CACHED_BLOCKS = 8


class Completeness(enum.Enum):
    COMPLETE = "complete"
    INCOMPLETE = "incomplete"
    NOT_APPLICABLE = "not_applicable"  # a type without a check (MTS, MPG...), or unrecognised


@dataclass(frozen=True)
class Verdict:
    """Is the container whole? `reason` is for people (logs, `last_error` after `incomplete:`).

    `final`: a complete container that a close proves done. A fragmented MP4 without its
    closing `mfra` is whole at every fragment boundary, and a live recorder that appends a
    fragment at a time closes it at each: it is complete, not final, so only the settle rule
    (held still) lets it go, never a close alone.
    """

    completeness: Completeness
    reason: str
    final: bool = True

    @property
    def complete(self) -> bool:
        return self.completeness is Completeness.COMPLETE

    @property
    def incomplete(self) -> bool:
        return self.completeness is Completeness.INCOMPLETE


def complete(reason: str, *, final: bool = True) -> Verdict:
    return Verdict(Completeness.COMPLETE, reason, final)


def incomplete(reason: str) -> Verdict:
    return Verdict(Completeness.INCOMPLETE, reason)


def not_applicable(reason: str) -> Verdict:
    return Verdict(Completeness.NOT_APPLICABLE, reason)


class Reader(Protocol):
    """Random access to a file's bytes (tests feed bytes; the daemon reads the file)."""

    def read_at(self, offset: int, length: int) -> bytes:
        """Up to `length` bytes from `offset` (fewer only at the end of the file)."""
        ...


class BytesReader:
    """A Reader over bytes in memory."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def read_at(self, offset: int, length: int) -> bytes:
        return self._data[offset : offset + length]


class Broken(Exception):
    """The container is not whole (yet); the message says why, for people."""


class Truncated(Exception):
    """The file gave fewer bytes than its observed size promised: it shrank while we looked."""


class OverBudget(Exception):
    """A check needed more reads or bytes than a check may cost."""


class Window:
    """A file of `size` bytes seen through a Reader, within the read budget."""

    def __init__(self, reader: Reader, size: int) -> None:
        self.reader = reader
        self.size = size
        self.reads = 0
        self.bytes_read = 0
        self._blocks: OrderedDict[int, bytes] = OrderedDict()

    def read(self, offset: int, length: int) -> bytes:
        """The bytes at [offset, offset + length) that lie within the file (shorter only past
        its end). Raises Truncated when the reader gives fewer, OverBudget past the budget."""
        length = max(0, min(length, self.size - offset, MAX_READ))
        if offset < 0 or length == 0:
            return b""
        for start, block in self._blocks.items():
            if start <= offset and offset + length <= start + len(block):
                return block[offset - start : offset - start + length]
        if self.reads >= MAX_READS or self.bytes_read + length > MAX_BYTES:
            raise OverBudget(f"more than {MAX_READS} reads or {MAX_BYTES} bytes")
        self.reads += 1
        self.bytes_read += length
        data = self.reader.read_at(offset, length)[:length]
        if len(data) < length:
            raise Truncated(f"the file ended at byte {offset + len(data)}, not {self.size}")
        self._blocks[offset] = data
        if len(self._blocks) > _CACHED_BLOCKS:
            self._blocks.popitem(last=False)
        return data

    def exactly(self, offset: int, length: int) -> bytes | None:
        """`length` bytes at `offset`, or None when the file ends before them."""
        if length > MAX_READ:
            raise ValueError(f"one read is at most {MAX_READ} bytes, not {length}")
        if offset < 0 or offset + length > self.size:
            return None
        return self.read(offset, length)
