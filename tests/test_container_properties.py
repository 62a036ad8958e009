"""Container checks on arbitrary bytes: never a crash, never a hang, never past the read budget;
and no file cut short (a writer not done, a copy under way) ever passes as complete."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import containers as c
from mavi_uploader.core.container import MAX_BYTES, MAX_READS, Completeness, Verdict, check
from mavi_uploader.core.containers.source import MAX_READ

QUIET: dict[str, Any] = {
    "database": None,
    "deadline": None,  # a shared machine; a hang is caught by the read budget and the timeout
    "max_examples": 150,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
NAMES = st.sampled_from(
    ["a.mp4", "a.mov", "a.m4v", "a.3gp", "a.mxf", "a.mkv", "a.webm", "a.avi", "a.mts", "a.mpg",
     "a.flv", "a.wmv", "README", None]
)  # fmt: skip
# Whole files whose last byte matters: every strict prefix of them is an unfinished file.
WHOLE = [
    ("a.mp4", c.mp4()),
    ("a.mp4", c.mp4(faststart=True)),
    ("a.mov", c.mp4(mdat_header="64")),
    ("a.m4v", c.mp4(faststart=True, mdat_header="64", tracks=3)),
    ("a.mxf", c.mxf()),
    ("a.mxf", c.mxf(bodies=3, header_status=c.OPEN_INCOMPLETE, footer_in_header=False)),
    ("a.mkv", c.mkv()),
    ("a.webm", c.mkv("webm", frames=40)),
    ("a.avi", c.avi()),
    ("a.avi", c.avi(index="indx")),
]
SEEDS = [*WHOLE, ("a.mp4", c.fragmented_mp4()), ("a.avi", c.avi(index="indx", avix=3)),
         ("a.mxf", c.mxf(run_in=b"run-in" * 20)), ("a.mp4", c.mp4(mdat_header="open"))]  # fmt: skip


class Budgeted:
    """A Reader that checks every read against the budget as it happens."""

    def __init__(self, data: bytes, repeat: bool = False) -> None:
        self.data = data
        self.repeat = repeat  # the bytes again and again: a file as large as claimed
        self.reads = 0
        self.bytes = 0

    def read_at(self, offset: int, length: int) -> bytes:
        self.reads += 1
        self.bytes += length
        assert offset >= 0 and 0 < length <= MAX_READ
        assert self.reads <= MAX_READS and self.bytes <= MAX_BYTES
        if not self.repeat or not self.data:
            return self.data[offset : offset + length]
        start = offset % len(self.data)
        copies = (start + length) // len(self.data) + 1
        return (self.data * copies)[start : start + length]


def judged(reader: Budgeted, size: int, name: str | None) -> Verdict:
    got = check(reader, size, name)
    assert isinstance(got.completeness, Completeness)
    assert got.reason and got.reason.isprintable()
    return got


@settings(**QUIET)
@given(data=st.binary(max_size=4096), slack=st.integers(-4096, 4096), name=NAMES)
@example(data=b"\x1a\x45\xdf\xa3\x01", slack=0, name="a.mkv")
@example(data=b"\x00\x00\x00\x01mdat", slack=100, name="a.mp4")
def test_arbitrary_bytes_and_sizes(data: bytes, slack: int, name: str | None) -> None:
    judged(Budgeted(data), max(0, len(data) + slack), name)


@settings(**QUIET)
@given(data=st.binary(min_size=1, max_size=512), size=st.integers(0, 1 << 64), name=NAMES)
def test_arbitrary_bytes_in_a_huge_file(data: bytes, size: int, name: str | None) -> None:
    """The bytes repeated up to a size as large as 16 EiB: offsets and lengths taken from
    them point anywhere, and are still read a little at a time."""
    judged(Budgeted(data, repeat=True), size, name)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    """A real-shaped file with a few bytes changed, cut or added: the checks' deep paths."""
    name, whole = draw(st.sampled_from(SEEDS))
    data = bytearray(whole)
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF, draw(st.integers(0, 255))]))
    cut = draw(st.integers(0, len(data)))
    tail = draw(st.binary(max_size=64))
    return name, bytes(data[:cut]) + (tail if draw(st.booleans()) else b"")


@settings(**QUIET)
@given(case=mutated(), repeat=st.booleans(), grow=st.integers(0, 1 << 40))
def test_mutated_files(case: tuple[str, bytes], repeat: bool, grow: int) -> None:
    name, data = case
    size = len(data) + grow if repeat else len(data)
    judged(Budgeted(data, repeat=repeat), size, name)


@settings(**QUIET)
@given(whole=st.sampled_from(WHOLE), cut=st.floats(0, 1, exclude_max=True))
@example(whole=WHOLE[1], cut=0.5)
def test_no_file_cut_short_is_complete(whole: tuple[str, bytes], cut: float) -> None:
    name, data = whole
    assert judged(Budgeted(data), len(data), name).complete
    prefix = data[: int(len(data) * cut)]
    got = judged(Budgeted(prefix), len(prefix), name)
    assert got.completeness is Completeness.INCOMPLETE, (len(prefix), got.reason)


def test_no_file_cut_short_is_complete_at_any_byte() -> None:
    """The same, at every length, for each small whole file (a few thousand checks)."""
    for name, data in WHOLE:
        for length in range(len(data)):
            got = check(Budgeted(data[:length]), length, name)
            assert got.completeness is Completeness.INCOMPLETE, (name, length, got.reason)


def test_a_fragmented_file_is_whole_exactly_at_its_fragment_boundaries() -> None:
    data = c.fragmented_mp4(fragments=4)
    boundaries = set(c.fragment_boundaries(data))
    for length in range(len(data) + 1):
        got = check(Budgeted(data[:length]), length, "a.mp4")
        assert got.complete == (length in boundaries), (length, got.reason)
