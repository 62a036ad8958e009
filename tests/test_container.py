"""The container check's entry: type by name and bytes, files on disk, and what a check costs."""

from __future__ import annotations

import os
import struct
import threading
from pathlib import Path

import pytest

import containers as c
from mavi_uploader.core import container
from mavi_uploader.core.container import (
    MAX_BYTES,
    MAX_READS,
    BytesReader,
    Completeness,
    Verdict,
    check,
)
from mavi_uploader.core.containers.mp4_tables import MAX_TAIL_SAMPLES

COMPLETE, INCOMPLETE = Completeness.COMPLETE, Completeness.INCOMPLETE
NOT_APPLICABLE = Completeness.NOT_APPLICABLE
GB = 1 << 30
TS = (b"\x47" + bytes(187)) * 3
M2TS = (bytes(4) + b"\x47" + bytes(187)) * 3
ASF = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c") + bytes(40)


def verdict(data: bytes, name: str | None) -> Verdict:
    return check(BytesReader(data), len(data), name)


# ---- which check: the name and the bytes together -------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "completeness", "reason"),
    [
        ("a.mts", TS, NOT_APPLICABLE, "no container check for an MPEG transport stream"),
        ("a.m2ts", M2TS, NOT_APPLICABLE, "no container check for an MPEG transport stream (M2TS)"),
        ("a.mpg", b"\x00\x00\x01\xba" + bytes(60), NOT_APPLICABLE,
         "no container check for an MPEG program stream"),
        ("a.flv", b"FLV\x01\x05" + bytes(20), NOT_APPLICABLE, "no container check for FLV"),
        ("a.wmv", ASF, NOT_APPLICABLE, "no container check for ASF (WMV)"),
        ("a.xyz", b"hello world", NOT_APPLICABLE, "no container check for .xyz files"),
        ("README", b"hello world", NOT_APPLICABLE,
         "no container check for a file without an extension"),
        ("a.mts", b"", NOT_APPLICABLE, "the file is empty"),
        # a checked name whose bytes are another type, or none we know: not checked, said so
        ("a.mp4", TS, NOT_APPLICABLE, "named .mp4 but holds an MPEG transport stream: not checked"),
        ("a.avi", b"RIFF\x10\x00\x00\x00WAVEfmt ", NOT_APPLICABLE,
         "named .avi but holds RIFF b'WAVE': not checked"),
        ("a.mkv", b"not a video, really", NOT_APPLICABLE,
         "named .mkv but is not MKV (it starts with 6e 6f 74 20 61 20 76 69): not checked"),
        ("a.mp4", bytes(range(200, 216)), NOT_APPLICABLE,
         "named .mp4 but is not MP4 (it starts with c8 c9 ca cb cc cd ce cf): not checked"),
        ("a.mxf", bytes(100), NOT_APPLICABLE, "named .mxf but is not MXF (it starts with…"),
        # too short to tell yet: a writer has only begun
        ("a.mp4", b"", INCOMPLETE, "the file is empty"),
        ("a.mp4", b"\x00\x00\x00", INCOMPLETE, "MP4 is only 3 bytes long so far"),
        ("a.avi", b"RIFF\x00\x00", INCOMPLETE, "AVI is only 6 bytes long so far"),
        # bytes of a checked type are checked whatever the name says, and the reason says so
        ("a.mp4", c.mkv(), COMPLETE,
         "MKV is complete: its segment size matches the file (named .mp4, holds MKV)"),
        ("a.mts", c.mp4()[:500], INCOMPLETE,
         "MP4 box 'mdat' runs past the end of the file (declares 1008 bytes, 476 left) "
         "(named .mts, holds MP4)"),
        ("a.mov", c.avi(), COMPLETE, "AVI is complete: … (named .mov, holds AVI)"),
        ("a.avi", c.mxf(rip=False), INCOMPLETE,
         "MXF has no Random Index Pack at its end (named .avi, holds MXF)"),
        (None, c.mp4(), COMPLETE, "MP4 is complete: 3 top-level boxes with a moov tile the file"),
        ("a.webm", c.mkv(), COMPLETE, "WebM is complete: its segment size matches the file"),
        # a QuickTime movie without ftyp, a file starting with another box: still MP4 family
        ("a.mov", c.box("wide") + c.box("mdat", b"x" * 50) + c.box("moov"), COMPLETE, "MOV is…"),
        ("a.mp4", c.box("uuid", bytes(16)) + c.mp4(), COMPLETE, "MP4 is complete: …"),
    ],
)  # fmt: skip
def test_type_by_name_and_bytes(
    name: str | None, data: bytes, completeness: Completeness, reason: str
) -> None:
    got = verdict(data, name)
    assert got.completeness is completeness, got.reason
    if "…" in reason:
        head, tail = reason.split("…")
        assert got.reason.startswith(head) and got.reason.endswith(tail), got.reason
    else:
        assert got.reason == reason


def test_verdict_flags() -> None:
    assert verdict(c.mp4(), "a.mp4").complete
    assert verdict(c.mp4()[:-1], "a.mp4").incomplete
    unchecked = verdict(TS, "a.mts")
    assert not unchecked.complete and not unchecked.incomplete
    assert {"mp4", "mov", "m4v", "3gp", "mxf", "mkv", "webm", "avi"} <= container.CHECKED_EXTENSIONS


def test_a_file_that_shrinks_while_checked_is_incomplete() -> None:
    data = c.mp4()
    reader = c.Counting(data, short_after=500)
    got = check(reader, len(data), "a.mp4")
    assert got.incomplete
    assert got.reason.startswith("the file changed while it was checked (the file ended at")


def test_bytes_past_the_observed_size_are_not_looked_at() -> None:
    data = c.mp4()
    got = check(BytesReader(data + c.box("free")), len(data), "a.mp4")  # grew since the stat
    assert got.complete, got.reason


# ---- files on disk --------------------------------------------------------------------


def test_check_a_path(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mov"
    clip.write_bytes(c.mp4())
    assert check(clip, clip.stat().st_size).reason.startswith("MOV is complete")
    assert check(str(clip), 100).reason.startswith("MOV box 'mdat' runs past the end of the file")
    assert check(clip, clip.stat().st_size, name="x.mp4").reason.startswith("MP4 is complete")


def test_a_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        check(tmp_path / "gone.mp4", 10)


def test_a_fifo_never_blocks(tmp_path: Path) -> None:
    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    done = threading.Event()

    def probe() -> None:
        with pytest.raises(OSError):
            check(fifo, 1000)
        done.set()

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout=5)
    assert done.is_set(), "checking a FIFO blocked"


# ---- a file with an unwritten range (preallocated, filled out of order) ---------------

MIB = 1 << 20


def sparse_file(path: Path, size: int, *written: tuple[int, bytes]) -> Path:
    """A file of `size` bytes of which only the `written` (offset, bytes) ranges hold data:
    what a download preallocated at its full size leaves before its middle arrives."""
    with path.open("wb") as f:
        f.truncate(size)
        for offset, data in written:
            f.seek(offset)
            f.write(data)
    return path


@pytest.fixture
def holes(tmp_path: Path) -> Path:
    """tmp_path, where the file system reports holes (SEEK_HOLE); else the test is skipped."""
    probe = sparse_file(tmp_path / "probe", 8 * MIB, (0, b"x" * 4096))
    with probe.open("rb") as f:
        try:
            hole = os.lseek(f.fileno(), 0, os.SEEK_HOLE)
        except (AttributeError, OSError) as error:
            pytest.skip(f"no SEEK_HOLE here: {error}")
    probe.unlink()
    if hole >= 8 * MIB:
        pytest.skip(f"the file system under {tmp_path} does not report holes")
    return tmp_path


def test_a_preallocated_file_with_its_head_and_tail_written_is_incomplete(holes: Path) -> None:
    """A torrent client fetches the first and last pieces first: the moov (at the end) and
    the ftyp and mdat header (at the start) are there, the media between is not."""
    whole = c.mp4(b"\x01" * (6 * MIB))
    head, tail = whole[: 64 * 1024], whole[-64 * 1024 :]
    clip = sparse_file(holes / "clip.mp4", len(whole), (0, head), (len(whole) - len(tail), tail))
    assert check(BytesReader(whole), len(whole), "clip.mp4").complete  # the bytes look whole
    got = check(clip, len(whole))
    assert got.incomplete
    start = int(got.reason.split("at byte ")[1].split(" ")[0])
    assert 64 * 1024 <= start <= 128 * 1024  # where the written head ends, to a block
    assert got.reason.startswith(f"the file has an unwritten range at byte {start} (")
    assert got.reason.endswith(" bytes): a download or copy still filling it")
    clip.write_bytes(whole)  # the middle arrives
    assert check(clip, len(whole)).complete


@pytest.mark.parametrize("name", ["clip.mts", "clip.mxf", "clip.mkv", "clip.avi", "notes.txt"])
def test_a_hole_makes_any_type_incomplete(holes: Path, name: str) -> None:
    size = 4 * MIB
    clip = sparse_file(holes / name, size, (0, TS), (size - len(TS), TS))
    got = check(clip, size)
    assert got.incomplete and "unwritten range" in got.reason, got.reason


def test_a_hole_to_the_end_counts_up_to_the_observed_size(holes: Path) -> None:
    clip = sparse_file(holes / "clip.mts", 3 * MIB, (0, TS * 40))
    got = check(clip, 3 * MIB)
    start = int(got.reason.split("at byte ")[1].split(" ")[0])
    assert got.reason == (
        f"the file has an unwritten range at byte {start} ({3 * MIB - start} bytes): "
        "a download or copy still filling it"
    )
    # a hole that begins past the size observed is not looked at
    assert check(clip, 4096, name="clip.mts").completeness is NOT_APPLICABLE


def test_a_short_hole_is_passed_over(holes: Path) -> None:
    """ZFS with compression stores a zero-filled record as a hole: holes under 1 MiB are
    taken for zeros a video holds (padding), not for a range still to be written."""
    whole = c.mp4(b"\x01" * (3 * MIB))
    at = len(whole) // 2
    clip = sparse_file(holes / "clip.mp4", len(whole), (0, whole[:at]), (at + 512 * 1024,
                       whole[at + 512 * 1024 :]))  # fmt: skip
    with clip.open("rb") as f:
        assert os.lseek(f.fileno(), 0, os.SEEK_HOLE) < len(whole)  # there is a hole...
        assert container.first_hole(f.fileno(), len(whole)) is None  # ...too short to count
    got = check(clip, len(whole))
    assert got.complete, got.reason
    # and a long one further on is still found
    big = sparse_file(holes / "big.mp4", 8 * MIB, (0, b"\x01" * MIB), (MIB + 256 * 1024,
                      b"\x01" * MIB), (7 * MIB, b"\x01" * MIB))  # fmt: skip
    assert check(big, 8 * MIB).reason.startswith("the file has an unwritten range at byte")


def test_a_reader_is_not_asked_for_holes() -> None:
    data = bytes(4 * MIB)
    assert check(BytesReader(data), len(data), "a.mts").completeness is NOT_APPLICABLE


# ---- a multi-GB file costs a handful of reads -----------------------------------------


def _huge_mp4() -> tuple[dict[int, bytes], int]:
    head = c.ftyp() + struct.pack(">I4sQ", 1, b"mdat", 8 * GB)
    # the last chunks end inside the mdat: 2 GB - 100 bytes from 6 GB, 1000 bytes from 49
    video = c.trak([len(head) + 5, 6 * GB], wide=True, sizes=[100, 2 * GB - 100])
    tracks = video + c.trak([len(head) + 9], wide=True, sample_size=500, samples=2,
                            per_chunk=[(1, 2)])  # fmt: skip
    movie = c.box("moov", c.box("mvhd", bytes(100)) + tracks)
    return {0: head, len(c.ftyp()) + 8 * GB: movie}, len(c.ftyp()) + 8 * GB + len(movie)


def _huge_mkv() -> tuple[dict[int, bytes], int]:
    whole = c.mkv()
    segment = whole.index(c.SEGMENT_ID)
    size = 8 * GB
    head = whole[:segment] + c.SEGMENT_ID + ((size - segment - 12) | 1 << 56).to_bytes(8, "big")
    return {0: head}, size


def _huge_avi() -> tuple[dict[int, bytes], int]:
    hdrl = c.avi_header_list("indx", entries=8)
    movi = b"LIST" + struct.pack("<I", GB - 12 - len(hdrl) - 8) + b"movi"
    regions = {0: b"RIFF" + struct.pack("<I", GB - 8) + b"AVI " + hdrl + movi}
    for n in range(1, 8):
        regions[n * GB] = b"RIFF" + struct.pack("<I", GB - 8) + b"AVIX"
    return regions, 8 * GB


def _huge_mxf() -> tuple[dict[int, bytes], int]:
    footer_at = 8 * GB
    header = c.partition_pack(c.HEADER, c.CLOSED_COMPLETE, this=0, footer=footer_at)
    footer = c.partition_pack(c.FOOTER, c.CLOSED_COMPLETE, this=footer_at, footer=footer_at)
    rip = c.random_index_pack([0, 4 * GB, footer_at])
    body = c.partition_pack(c.BODY, c.CLOSED_COMPLETE, this=4 * GB)
    return {0: header, 4 * GB: body, footer_at: footer + rip}, footer_at + len(footer + rip)


@pytest.mark.parametrize(
    ("name", "build", "reads"),
    [("a.mp4", _huge_mp4, 4), ("a.mkv", _huge_mkv, 2), ("a.avi", _huge_avi, 12),
     ("a.mxf", _huge_mxf, 8)],
)  # fmt: skip
def test_a_huge_file_costs_a_handful_of_reads(name: str, build: object, reads: int) -> None:
    assert callable(build)
    regions, size = build()
    reader = c.Sparse(regions)
    got = check(reader, size, name)
    assert got.complete, got.reason
    assert reader.reads <= reads
    assert reader.bytes <= 128 * 1024


def test_many_fragments_are_walked_within_the_budget() -> None:
    data = c.fragmented_mp4(fragments=3_000, sample=b"\x02" * 20) + c.mfra()
    reader = c.Counting(data)
    got = check(reader, len(data), "a.mp4")
    assert got.reason == (
        "MP4 is complete: 3000 fragments and moov tile the file, closed by an mfra box"
    )
    assert got.final
    assert reader.reads <= MAX_READS and reader.bytes <= MAX_BYTES


def test_many_tracks_with_long_chunks_stay_within_the_budget() -> None:
    """64 tracks, each with a size table too large to be cached with the moov and a last
    chunk of more samples than are read: each track costs a few small reads."""
    many = 2 * MAX_TAIL_SAMPLES

    def track(at: int) -> bytes:
        return c.trak([at], sizes=[1] * many, per_chunk=[(1, many)])

    data = c.open_faststart(many, *[track] * 64)
    at = len(data) - many
    assert len(data) > 5 * 80 * 1024  # the moov is read in pieces, not served by one read
    reader = c.Counting(data)
    assert check(reader, len(data), "a.mp4").complete
    # about 16 reads a track (the box headers walked to its tables, then three entries)
    assert reader.reads <= 64 * 20 and reader.bytes <= MAX_BYTES // 2
    short = data[: at + MAX_TAIL_SAMPLES - 1]  # short of even the last samples read
    cut = c.Counting(short)
    got = check(cut, len(short), "a.mp4")
    assert got.reason.startswith("MP4 track 1's last chunk ends at byte"), got.reason
    assert cut.reads <= 64 + 16  # a header per track (looking for mvex), then track 1's tables


def test_too_many_boxes_to_walk_is_not_checked() -> None:
    data = c.mp4() + c.box("free", bytes(40)) * 9_000
    reader = c.Counting(data)
    got = check(reader, len(data), "a.mp4")
    assert got.completeness is NOT_APPLICABLE
    assert got.reason == "MP4 has more than 8000 top-level boxes to check"
    assert reader.reads <= MAX_READS and reader.bytes <= MAX_BYTES
