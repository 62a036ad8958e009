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
    ("a.mp4", c.mp4(faststart=True, mdat_header="open")),  # the sample tables say where it ends
    (
        "a.mov",
        c.open_faststart(
            410,
            lambda at: c.trak([at + 300], sample_size=1, samples=9, per_chunk=[(1, 3)]),
            lambda at: c.trak(
                [at, at + 100, at + 300],
                sizes=[100, 100, 100, 50, 60],
                per_chunk=[(1, 1), (2, 2)],
                compact=16,
            ),
        ),
    ),
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
    """...and final (a close proves it done) only once its mfra is there, at the very end."""
    data = c.fragmented_mp4(fragments=4) + c.mfra()
    boundaries = set(c.fragment_boundaries(data))
    for length in range(len(data) + 1):
        got = check(Budgeted(data[:length]), length, "a.mp4")
        assert got.complete == (length in boundaries or length == len(data)), (length, got.reason)
        assert got.final == (not got.complete or length == len(data)), (length, got.reason)


U32 = st.integers(0, 2**32 - 1)
TABLE_FIELDS = {  # where a hostile value can go: box type, offset in its payload, width
    "stco count": (b"stco", 4, 4),
    "stsc count": (b"stsc", 4, 4),
    "stsc first chunk": (b"stsc", 8, 4),
    "stsc samples per chunk": (b"stsc", 12, 4),
    "stsz sample size": (b"stsz", 4, 4),
    "stsz count": (b"stsz", 8, 4),
    "stsz entry": (b"stsz", 12, 4),
    "stz2 field size": (b"stz2", 7, 1),
    "stz2 count": (b"stz2", 8, 4),
}


@st.composite
def hostile_tables(draw: st.DrawFn) -> bytes:
    """A fast-start MP4 with an open mdat whose sample tables hold any values: counts and
    sizes up to 2**32 - 1, chunk offsets anywhere, entries that disagree with each other."""
    kind = draw(st.sampled_from(["stsz", "constant", "stz2"]))
    sizes = draw(st.lists(st.integers(0, 15), max_size=12))
    small_or_any = st.one_of(st.integers(0, 12), U32)  # values that agree often, or any
    constant, samples = draw(small_or_any), draw(small_or_any)
    first_chunk = st.one_of(st.integers(1, 4), U32)
    per_chunk = draw(st.lists(st.tuples(first_chunk, small_or_any), max_size=3))
    media = draw(st.integers(1, 600))
    offsets = draw(st.lists(st.integers(0, media - 1), min_size=1, max_size=4))
    spread = draw(st.sampled_from([True, True, True, False]))  # into the media, or anywhere

    def track(at: int) -> bytes:
        chunks = [at + o if spread else o * 7_000_000 for o in offsets]
        if kind == "constant":
            return c.trak(chunks, sample_size=constant, samples=samples, per_chunk=per_chunk)
        return c.trak(chunks, sizes=sizes, per_chunk=per_chunk, compact=4 if kind == "stz2" else 0)

    data = bytearray(c.open_faststart(media, track))
    for field in draw(st.lists(st.sampled_from(sorted(TABLE_FIELDS)), max_size=2)):
        box_type, offset, width = TABLE_FIELDS[field]
        where = data.find(box_type) + 4 + offset
        if where >= 4 + offset and where + width <= len(data):
            data[where : where + width] = draw(st.integers(0, 2 ** (8 * width) - 1)).to_bytes(
                width, "big"
            )
    return bytes(data)


@settings(**QUIET)
@given(data=hostile_tables(), grow=st.integers(0, 1 << 40), repeat=st.booleans())
def test_hostile_sample_tables(data: bytes, grow: int, repeat: bool) -> None:
    """Never a crash, and never a read past the budget, whatever the tables say."""
    judged(Budgeted(data), len(data), "a.mp4")
    judged(Budgeted(data, repeat=repeat), len(data) + grow, "a.mp4")
