"""Container checks per format: tables of real-shaped files, whole and as writers leave them."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest

import containers as c
from mavi_uploader.core.container import BytesReader, Completeness, Verdict, check
from mavi_uploader.core.containers.mp4_tables import MAX_TAIL_SAMPLES

COMPLETE, INCOMPLETE = Completeness.COMPLETE, Completeness.INCOMPLETE
FTYP = len(c.ftyp())  # 24
MP4 = c.mp4()  # ftyp, mdat of 1000 bytes, moov
FAST = c.mp4(faststart=True)  # ftyp, moov, mdat
FRAG = c.fragmented_mp4()
MOOV_END = FTYP + 1008


def verdict(data: bytes, name: str) -> Verdict:
    return check(BytesReader(data), len(data), name)


def expect(data: bytes, name: str, completeness: Completeness, reason: str) -> None:
    """The verdict, and its reason: exactly `reason`, or starting with it when it ends in '…'."""
    got = verdict(data, name)
    assert got.completeness is completeness, got.reason
    if reason.endswith("…"):
        assert got.reason.startswith(reason[:-1]), got.reason
    else:
        assert got.reason == reason


Case = tuple[str, Callable[[], bytes], Completeness, str]


def cases(*rows: Case) -> Callable[[Callable[..., None]], Callable[..., None]]:
    return pytest.mark.parametrize(("name", "build", "completeness", "reason"), rows,
                                   ids=[f"{r[0]}:{r[3][:40]}" for r in rows])  # fmt: skip


# ---- MP4 / MOV / M4V / 3GP ------------------------------------------------------------


def _fragment_cut_after_moof() -> bytes:
    moof = c.fragment_boundaries(FRAG)[1]
    return FRAG[: moof + struct.unpack(">I", FRAG[moof : moof + 4])[0]]


@cases(
    ("a.mp4", lambda: MP4, COMPLETE,
     "MP4 is complete: 3 top-level boxes with a moov tile the file"),
    ("a.mp4", lambda: FAST, COMPLETE, "MP4 is complete: …"),
    ("a.mov", lambda: c.mp4(mdat_header="64"), COMPLETE, "MOV is complete: …"),
    ("a.m4v", lambda: c.mp4(faststart=True, mdat_header="64"), COMPLETE, "M4V is complete: …"),
    # size 0 = to the end of the file: whole when the moov before it is
    ("a.mp4", lambda: c.mp4(faststart=True, mdat_header="open"), COMPLETE, "MP4 is complete: …"),
    ("a.3gp", lambda: c.ftyp("3gp4") + c.box("moov") + c.box("free", b"x" * 9), COMPLETE, "3GP…"),
    ("a.mp4", lambda: MP4 + c.box("free"), COMPLETE, "MP4 is complete: 4 top-level boxes…"),
    # a recorder before its trailer: mdat open to the end, no moov
    ("a.mp4", lambda: c.mp4(mdat_header="open")[:-200], INCOMPLETE, "MP4 has no moov box yet"),
    ("a.mov", lambda: MP4[:MOOV_END], INCOMPLETE, "MOV has no moov box yet"),
    ("a.mp4", lambda: MP4[:FTYP], INCOMPLETE, "MP4 has no moov box yet"),
    (
        "a.mp4", lambda: MP4[:200], INCOMPLETE,
        "MP4 box 'mdat' runs past the end of the file (declares 1008 bytes, 176 left)",
    ),
    ("a.mp4", lambda: MP4[:-1], INCOMPLETE, "MP4 box 'moov' runs past the end of the file…"),
    ("a.mp4", lambda: c.mp4(mdat_header="64")[:100], INCOMPLETE, "MP4 box 'mdat' runs past…"),
    ("a.mp4", lambda: MP4[:FTYP + 5], INCOMPLETE, "MP4 ends inside a box header at byte 24"),
    ("a.mp4", lambda: MP4 + b"\0\0\0", INCOMPLETE, "MP4 ends inside a box header at byte…"),
    ("a.mp4", lambda: MP4 + bytes(16), INCOMPLETE, "MP4 has no box at byte…"),
    (
        "a.mp4", lambda: c.ftyp() + struct.pack(">I4s", 4, b"free"), INCOMPLETE,
        "MP4 box 'free' at byte 24 has an impossible size (4)",
    ),
    (
        "a.mp4", lambda: c.ftyp() + struct.pack(">I4sQ", 1, b"mdat", 8), INCOMPLETE,
        "MP4 box 'mdat' at byte 24 has an impossible size (8)",
    ),
    # a fast-start file cut (or copied) up to its moov: the media is not there
    (
        "a.mp4", lambda: FAST[: len(FAST) - 1008], INCOMPLETE,
        f"MP4 track 1 has media at byte {len(FAST) - 500}, past the end of the file…",
    ),
    (
        "a.mp4", lambda: c.ftyp() + c.box("moov", c.box("mvhd") + c.trak([10**9], wide=True)),
        INCOMPLETE, "MP4 track 1 has media at byte 1000000000, past the end of the file…",
    ),
    (
        "a.mp4", lambda: c.ftyp() + c.box("moov", c.trak([5])[:-4]) + c.box("free"), INCOMPLETE,
        "MP4 box 'trak' at byte 32 runs past the end of its parent box",
    ),
    # fragmented: whole at each fragment boundary, final only once an mfra closes it
    ("a.mp4", lambda: FRAG, COMPLETE,
     "MP4 is complete to its last fragment (3 fragments); more may follow: no mfra box"),
    ("a.mp4", lambda: FRAG[: c.fragment_boundaries(FRAG)[0]], COMPLETE,
     "MP4 is complete to its last fragment (1 fragment); more may follow: no mfra box"),
    ("a.mp4", lambda: FRAG + c.mfra(), COMPLETE,
     "MP4 is complete: 3 fragments and moov tile the file, closed by an mfra box"),
    ("a.mp4", _fragment_cut_after_moof, INCOMPLETE, "MP4 fragment at byte…"),
    ("a.mp4", lambda: FRAG[:-1], INCOMPLETE, "MP4 box 'mdat' runs past the end of the file…"),
    (
        "a.mp4", lambda: c.fragmented_mp4(fragments=0), INCOMPLETE,
        "MP4 is fragmented but has no fragment (moof box) yet",
    ),
)  # fmt: skip
def test_mp4(
    name: str, build: Callable[[], bytes], completeness: Completeness, reason: str
) -> None:
    expect(build(), name, completeness, reason)


def test_only_a_fragmented_mp4_without_its_mfra_is_not_final() -> None:
    """A live recorder appends a fragment at a time and closes the file after each: a close
    proves nothing until the mfra a muxer writes last is there."""
    assert not verdict(FRAG, "a.mp4").final
    assert verdict(FRAG + c.mfra(), "a.mp4").final
    # an mfra before more fragments closes nothing: fragments were appended after it
    assert not verdict(
        FRAG + c.mfra() + FRAG[c.fragment_boundaries(FRAG)[0] - 308 :], "a.mp4"
    ).final
    for data, name in [(MP4, "a.mp4"), (FAST, "a.mov"), (c.mxf(), "a.mxf"), (c.mkv(), "a.mkv"),
                       (c.avi(), "a.avi")]:  # fmt: skip
        got = verdict(data, name)
        assert got.complete and got.final, got.reason


def test_the_last_moof_without_its_mdat_is_named() -> None:
    cut = _fragment_cut_after_moof()
    moof = c.fragment_boundaries(FRAG)[1]
    expect(cut, "a.mp4", INCOMPLETE, f"MP4 fragment at byte {moof} has no mdat box yet")


# ---- MP4: where each track's last chunk ends ------------------------------------------


def media_at(data: bytes) -> int:
    return data.index(b"mdat") + 4


def constant(at: int) -> bytes:
    """Ten samples of 100 bytes, five to a chunk: the last chunk ends 1000 bytes in."""
    return c.trak([at, at + 500], sample_size=100, samples=10, per_chunk=[(1, 5)])


def two_entries(at: int, compact: int = 0) -> bytes:
    """One sample in chunk 1, then two a chunk: the last chunk (samples 4 and 5, 50 + 60
    bytes) starts 300 bytes in and ends 410 bytes in. Read by the first stsc entry alone
    (one sample a chunk), it would end 360 bytes in."""
    return c.trak([at, at + 100, at + 300], sizes=[100, 100, 100, 50, 60],
                  per_chunk=[(1, 1), (2, 2)], compact=compact)  # fmt: skip


def nibbles(at: int) -> bytes:
    """4-bit stz2 sizes, an odd count of them: the last chunk, samples 3 to 5 (7 + 3 + 9
    bytes), starts 10 bytes in and ends 29 bytes in."""
    return c.trak([at, at + 10], sizes=[5, 5, 7, 3, 9], per_chunk=[(1, 2), (2, 3)], compact=4)


def patched(data: bytes, kind: bytes, at: int, value: bytes) -> bytes:
    """`data` with `value` written `at` bytes into the first `kind` box's payload."""
    where = data.index(kind) + 4 + at
    return data[:where] + value + data[where + len(value) :]


def ends_past(track: int, end: int, size: int, later: bool = False) -> str:
    return (f"MP4 track {track}'s last chunk ends at byte {end}{' or later' if later else ''}, "
            f"past the end of the file ({size} bytes)")  # fmt: skip


WHOLE_OPEN = c.mp4(faststart=True, mdat_header="open")
CUT_OPEN = WHOLE_OPEN[:-1]


@cases(
    # fast start, mdat to the end of the file: whole to its last byte, not one byte less
    ("a.mp4", lambda: WHOLE_OPEN, COMPLETE, "MP4 is complete: 3 top-level boxes with a moov…"),
    ("a.mp4", lambda: CUT_OPEN, INCOMPLETE, ends_past(2, len(WHOLE_OPEN), len(CUT_OPEN))),
    ("a.mp4", lambda: WHOLE_OPEN[:-300], INCOMPLETE, "MP4 track 1's last chunk ends at byte…"),
    # the last sample not begun: the chunk starts inside the file, ends past it
    ("a.mp4", lambda: c.open_faststart(1000, constant), COMPLETE, "MP4 is complete: …"),
    ("a.mp4", lambda: c.open_faststart(999, constant), INCOMPLETE, "MP4 track 1's last chunk…"),
    ("a.mp4", lambda: c.open_faststart(410, two_entries), COMPLETE, "MP4 is complete: …"),
    ("a.mp4", lambda: c.open_faststart(409, two_entries), INCOMPLETE, "MP4 track 1's last chunk…"),
    # stz2: 16-, 8- and 4-bit sizes
    ("a.mp4", lambda: c.open_faststart(410, lambda at: two_entries(at, 16)), COMPLETE, "MP4 is…"),
    ("a.mp4", lambda: c.open_faststart(409, lambda at: two_entries(at, 16)), INCOMPLETE, "MP4 tr…"),
    ("a.mp4", lambda: c.open_faststart(410, lambda at: two_entries(at, 8)), COMPLETE, "MP4 is…"),
    ("a.mp4", lambda: c.open_faststart(409, lambda at: two_entries(at, 8)), INCOMPLETE, "MP4 tr…"),
    ("a.mp4", lambda: c.open_faststart(29, nibbles), COMPLETE, "MP4 is complete: …"),
    ("a.mp4", lambda: c.open_faststart(28, nibbles), INCOMPLETE, "MP4 track 1's last chunk…"),
    # every track is looked at: the second one is cut
    ("a.mp4", lambda: c.open_faststart(999, lambda at: c.trak([at]), constant), INCOMPLETE,
     "MP4 track 2's last chunk…"),
    # tables that do not say where the chunk ends: its start alone is checked, as before
    ("a.mp4", lambda: c.open_faststart(10, lambda at: c.trak([at + 5])), COMPLETE, "MP4 is…"),
    ("a.mp4", lambda: c.open_faststart(10, lambda at: c.trak([at + 5], sizes=[1] * 5,
     per_chunk=[(1, 10)])), COMPLETE, "MP4 is complete: …"),  # 10 samples a chunk, 5 in all
    ("a.mp4", lambda: c.open_faststart(10, lambda at: c.trak([at + 5], sizes=[50],
     per_chunk=[(2, 1)])), COMPLETE, "MP4 is complete: …"),  # its stsc names no chunk there
    ("a.mp4", lambda: c.open_faststart(10, lambda at: c.trak([at], sizes=[50], per_chunk=[])),
     COMPLETE, "MP4 is complete: …"),  # an empty stsc
    # tables whose entries overrun their box
    ("a.mp4", lambda: patched(c.open_faststart(410, two_entries), b"stsz", 8, b"\xff" * 4),
     INCOMPLETE, "MP4 track 1 has a malformed stsz box"),
    ("a.mp4", lambda: patched(c.open_faststart(410, two_entries), b"stsc", 4, b"\x00\x00\x01\x00"),
     INCOMPLETE, "MP4 track 1 has a malformed stsc box"),
    ("a.mp4", lambda: patched(c.open_faststart(410, lambda at: two_entries(at, 8)), b"stz2", 7,
     b"\x07"), INCOMPLETE, "MP4 track 1 has a malformed stz2 box (entries of 7 bits)"),
    ("a.mp4", lambda: patched(c.open_faststart(29, nibbles), b"stz2", 8,
     b"\x00\x00\x00\x0b"), INCOMPLETE, "MP4 track 1 has a malformed stz2 box"),
)  # fmt: skip
def test_mp4_last_chunk(
    name: str, build: Callable[[], bytes], completeness: Completeness, reason: str
) -> None:
    expect(build(), name, completeness, reason)


def test_the_reason_says_where_the_last_chunk_ends() -> None:
    data = c.open_faststart(999, constant)
    at = media_at(data)
    expect(data, "a.mp4", INCOMPLETE, ends_past(1, at + 1000, len(data)))
    data = c.open_faststart(409, two_entries)
    expect(data, "a.mp4", INCOMPLETE, ends_past(1, media_at(data) + 410, len(data)))


def test_a_chunk_of_very_many_samples_is_summed_from_its_last_ones() -> None:
    """Past MAX_TAIL_SAMPLES samples in the chunk, the sizes of the last ones read are a lower
    bound of its end: a cut before that bound is caught, and the reason says "or later"."""
    many = 3 * MAX_TAIL_SAMPLES

    def track(at: int) -> bytes:
        return c.trak([at], sizes=[1] * many, per_chunk=[(1, many)])

    whole = c.open_faststart(many, track)
    assert verdict(whole, "a.mp4").complete
    short = c.open_faststart(MAX_TAIL_SAMPLES - 1, track)
    bound = media_at(short) + MAX_TAIL_SAMPLES
    expect(short, "a.mp4", INCOMPLETE, ends_past(1, bound, len(short), later=True))


# ---- MXF ------------------------------------------------------------------------------

WHOLE_MXF = c.mxf()
FOOTER_AT = len(c.mxf(footer=False, rip=False))


def _rip_moved(offsets: list[int]) -> bytes:
    rip = c.random_index_pack(offsets)
    return WHOLE_MXF[: len(WHOLE_MXF) - len(rip)] + rip


@cases(
    ("a.mxf", lambda: WHOLE_MXF, COMPLETE,
     "MXF is complete: footer partition and Random Index Pack (3 partitions)"),
    ("a.mxf", lambda: c.mxf(bodies=0), COMPLETE,
     "MXF is complete: footer partition and Random Index Pack (2 partitions)"),
    ("a.mxf", lambda: c.mxf(bodies=4), COMPLETE,
     "MXF is complete: footer partition and Random Index Pack (6 partitions)"),
    ("a.mxf", lambda: c.mxf(bodies=80), COMPLETE, "MXF is complete: footer partition and Random "
     "Index Pack (82 partitions)"),
    ("a.mxf", lambda: c.mxf(run_in=b"\x00run-in" * 100), COMPLETE, "MXF is complete: …"),
    # the footer is written last: an open header alone is not complete
    ("a.mxf", lambda: c.mxf(header_status=c.OPEN_INCOMPLETE, footer_in_header=False, footer=False,
                            rip=False), INCOMPLETE,
     "MXF has no footer partition (its header partition is open and incomplete)"),
    ("a.mxf", lambda: c.mxf(footer_in_header=False, footer=False, rip=False), INCOMPLETE,
     "MXF has no footer partition"),
    ("a.mxf", lambda: WHOLE_MXF[: FOOTER_AT - 10], INCOMPLETE, "MXF has no footer partition"),
    ("a.mxf", lambda: c.mxf(rip=False), INCOMPLETE, "MXF has no Random Index Pack at its end"),
    ("a.mxf", lambda: WHOLE_MXF[:-1], INCOMPLETE, "MXF has no Random Index Pack at its end"),
    ("a.mxf", lambda: WHOLE_MXF[:40], INCOMPLETE, "MXF header partition is not whole yet"),
    ("a.mxf", lambda: WHOLE_MXF[:10], INCOMPLETE, "MXF is only 10 bytes long so far"),
    ("a.mxf", lambda: _rip_moved([0, 1000, FOOTER_AT - 1]), INCOMPLETE,
     f"MXF has no footer partition where its Random Index Pack says (byte {FOOTER_AT - 1})"),
    ("a.mxf", lambda: _rip_moved([5, 1000, FOOTER_AT]), INCOMPLETE,
     "MXF Random Index Pack does not start at the header partition"),
    ("a.mxf", lambda: _rip_moved([0, FOOTER_AT + 1, FOOTER_AT]), INCOMPLETE,
     "MXF Random Index Pack offsets are out of order"),
    ("a.mxf", lambda: _rip_moved([0, 7, FOOTER_AT]), INCOMPLETE,
     "MXF Random Index Pack points at byte 7, where there is no partition"),
)  # fmt: skip
def test_mxf(
    name: str, build: Callable[[], bytes], completeness: Completeness, reason: str
) -> None:
    expect(build(), name, completeness, reason)


def test_mxf_header_and_rip_must_agree_on_the_footer() -> None:
    whole = c.mxf(footer_in_header=False)
    header = c.partition_pack(c.HEADER, c.CLOSED_COMPLETE, this=0, footer=99, header_bytes=44)
    broken = header + whole[len(header) :]
    expect(
        broken,
        "a.mxf",
        INCOMPLETE,
        f"MXF header partition says the footer is at 99, not {FOOTER_AT}",
    )


def test_mxf_bad_ber_length_is_not_a_partition() -> None:
    whole = bytearray(WHOLE_MXF)
    whole[16] = 0x80  # indefinite length: not allowed in MXF
    expect(bytes(whole), "a.mxf", INCOMPLETE, "MXF header partition is not whole yet")
    whole[16] = 0x89  # nine length bytes: more than BER may use here
    expect(bytes(whole), "a.mxf", INCOMPLETE, "MXF header partition is not whole yet")


# ---- MKV / WebM -----------------------------------------------------------------------

WHOLE_MKV = c.mkv()
SEGMENT_AT = WHOLE_MKV.index(c.SEGMENT_ID)


@cases(
    ("a.mkv", lambda: WHOLE_MKV, COMPLETE, "MKV is complete: its segment size matches the file"),
    ("a.webm", lambda: c.mkv("webm"), COMPLETE,
     "WebM is complete: its segment size matches the file"),
    ("a.mkv", lambda: WHOLE_MKV + c.element(b"\xec", bytes(20)), COMPLETE, "MKV is complete: …"),
    ("a.mkv", lambda: WHOLE_MKV + c.mkv(), COMPLETE, "MKV is complete: …"),
    ("a.mkv", lambda: c.mkv(unknown_size=True), INCOMPLETE,
     "MKV segment size is unknown (live recording)"),
    ("a.webm", lambda: c.mkv("webm", unknown_size=True), INCOMPLETE,
     "WebM segment size is unknown (live recording)"),
    ("a.mkv", lambda: WHOLE_MKV[:-1], INCOMPLETE,
     f"MKV segment runs past the end of the file (declares {len(WHOLE_MKV) - SEGMENT_AT - 12} "
     f"bytes, {len(WHOLE_MKV) - SEGMENT_AT - 13} left)"),
    ("a.mkv", lambda: WHOLE_MKV[:SEGMENT_AT], INCOMPLETE, "MKV has no segment yet"),
    ("a.mkv", lambda: WHOLE_MKV[: SEGMENT_AT + 6], INCOMPLETE,
     f"MKV ends inside an element header at byte {SEGMENT_AT}"),
    ("a.mkv", lambda: WHOLE_MKV[:15], INCOMPLETE, "MKV EBML header runs past the end of the file…"),
    ("a.mkv", lambda: WHOLE_MKV + b"\x1f\x43\xb6\x75\x81\x00", INCOMPLETE,
     f"MKV has an unexpected top-level element 0x1F43B675 at {len(WHOLE_MKV)}"),
    ("a.mkv", lambda: WHOLE_MKV + bytes(4), INCOMPLETE,
     f"MKV has no valid element at byte {len(WHOLE_MKV)}"),
    ("a.mkv", lambda: WHOLE_MKV[:2], INCOMPLETE, "MKV is only 2 bytes long so far"),
)  # fmt: skip
def test_mkv(
    name: str, build: Callable[[], bytes], completeness: Completeness, reason: str
) -> None:
    expect(build(), name, completeness, reason)


# ---- AVI ------------------------------------------------------------------------------

WHOLE_AVI = c.avi()
ODML = c.avi(index="indx", avix=2)


@cases(
    ("a.avi", lambda: WHOLE_AVI, COMPLETE,
     "AVI is complete: RIFF size matches and it has an idx1 index"),
    ("a.avi", lambda: ODML, COMPLETE,
     "AVI is complete: RIFF size matches and it has an OpenDML indx index"),
    ("a.avi", lambda: c.avi(index="indx"), COMPLETE, "AVI is complete: …"),
    # ffmpeg before its trailer: RIFF size 0xFFFFFFFF, no index, indx still JUNK
    ("a.avi", lambda: c.set_riff_size(c.avi(index="none"), 0xFFFFFFFF), INCOMPLETE,
     f"AVI RIFF size says {0xFFFFFFFF + 8} bytes, the file has {len(c.avi(index='none'))}"),
    ("a.avi", lambda: c.avi(index="none"), INCOMPLETE,
     "AVI has no index yet (no idx1 chunk or OpenDML indx)"),
    ("a.avi", lambda: c.avi(index="empty indx"), INCOMPLETE,
     "AVI has no index yet (no idx1 chunk or OpenDML indx)"),
    ("a.avi", lambda: WHOLE_AVI[:800], INCOMPLETE,
     f"AVI RIFF size says {len(WHOLE_AVI)} bytes, the file has 800"),
    ("a.avi", lambda: WHOLE_AVI + bytes(200), INCOMPLETE,
     f"AVI RIFF size says {len(WHOLE_AVI)} bytes, the file has {len(WHOLE_AVI) + 200}"),
    ("a.avi", lambda: ODML[:-3], INCOMPLETE, f"AVI RIFF size says {len(ODML)} bytes, the file…"),
    ("a.avi", lambda: c.set_riff_size(WHOLE_AVI, 9), INCOMPLETE, "AVI RIFF size says 18 bytes…"),
    ("a.avi", lambda: c.set_riff_size(WHOLE_AVI, len(WHOLE_AVI) - 208)[: len(WHOLE_AVI) - 200],
     INCOMPLETE, "AVI chunk 'LIST' at byte…"),
    ("a.avi", lambda: WHOLE_AVI[:11], INCOMPLETE, "AVI is only 11 bytes long so far"),
)  # fmt: skip
def test_avi(
    name: str, build: Callable[[], bytes], completeness: Completeness, reason: str
) -> None:
    expect(build(), name, completeness, reason)


def test_avi_odd_last_chunk_without_its_pad_byte() -> None:
    odd = c.avi(frame=b"\x04" * 100)  # even frames...
    riff = c.chunk("RIFF", odd[8:] + b"x")  # ...then one odd byte: a pad byte follows
    expect(riff, "a.avi", COMPLETE, "AVI is complete: …")
    expect(riff[:-1], "a.avi", COMPLETE, "AVI is complete: …")
