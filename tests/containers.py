"""Builders of small real-shaped video containers for the container checks' tests.

Each builder returns the bytes of a whole file laid out as its muxer lays it out (the boxes,
partitions, elements and chunks the checks look at, with tiny payloads), plus knobs that
break it the way an unfinished writer leaves it. `Sparse` stands for a multi-GB file: a few
known regions, zeros elsewhere, so tests can count what a check reads from it.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable, Sequence

# ---- MP4 / MOV (ISO base media) -------------------------------------------------------


def box(kind: str, payload: bytes = b"") -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind.encode()) + payload


def large_box(kind: str, payload: bytes = b"") -> bytes:
    """A box with a 64-bit size (size field 1, then largesize)."""
    return struct.pack(">I4sQ", 1, kind.encode(), 16 + len(payload)) + payload


def open_box(kind: str, payload: bytes = b"") -> bytes:
    """A box with size 0: it runs to the end of the file."""
    return struct.pack(">I4s", 0, kind.encode()) + payload


def ftyp(brand: str = "isom") -> bytes:
    return box("ftyp", brand.encode() + struct.pack(">I", 512) + brand.encode() + b"mp41")


def trak(
    chunk_offsets: Sequence[int],
    wide: bool = False,
    *,
    sizes: Sequence[int] | None = None,
    sample_size: int = 0,
    samples: int = 0,
    per_chunk: Sequence[tuple[int, int]] = ((1, 1),),
    compact: int = 0,
) -> bytes:
    """A track whose sample table's chunks start at `chunk_offsets` (stco, or co64 when
    `wide`). Its samples' sizes: the table `sizes` (stsz, or stz2 with `compact` bits an
    entry), or `samples` samples of `sample_size` bytes each; `per_chunk` gives the stsc
    entries (first chunk, samples per chunk). No sizes: no stsc nor stsz (the chunks' ends
    unknown, as in a table-less track)."""
    fmt = ">Q" if wide else ">I"
    offsets = struct.pack(">II", 0, len(chunk_offsets)) + b"".join(
        struct.pack(fmt, o) for o in chunk_offsets
    )
    tables = box("stsd", bytes(8))
    if sizes is not None or sample_size:
        entries = b"".join(struct.pack(">III", first, n, 1) for first, n in per_chunk)
        tables += box("stsc", struct.pack(">II", 0, len(per_chunk)) + entries)
    if sample_size:
        tables += box("stsz", struct.pack(">III", 0, sample_size, samples))
    elif sizes is not None and compact:
        tables += box("stz2", struct.pack(">I3xBI", 0, compact, len(sizes)) + pack(sizes, compact))
    elif sizes is not None:
        table = b"".join(struct.pack(">I", n) for n in sizes)
        tables += box("stsz", struct.pack(">III", 0, 0, len(sizes)) + table)
    stbl = box("stbl", tables + box("co64" if wide else "stco", offsets))
    minf = box("minf", box("vmhd", bytes(12)) + stbl)
    return box("trak", box("tkhd", bytes(84)) + box("mdia", box("mdhd", bytes(24)) + minf))


def pack(sizes: Sequence[int], bits: int) -> bytes:
    """stz2 entries of `bits` (4, 8 or 16) bits each; 4-bit ones two a byte, high first."""
    if bits == 4:
        padded = [*sizes, 0] if len(sizes) % 2 else list(sizes)
        return bytes(a << 4 | b for a, b in zip(padded[::2], padded[1::2], strict=True))
    return b"".join(n.to_bytes(bits // 8, "big") for n in sizes)


def moov(tracks: Sequence[bytes] = (), fragmented: bool = False) -> bytes:
    mvex = box("mvex", box("trex", bytes(24))) if fragmented else b""
    return box("moov", box("mvhd", bytes(100)) + b"".join(tracks) + mvex)


def mp4(
    media: bytes = b"\x01" * 1000,
    *,
    faststart: bool = False,
    mdat_header: str = "32",
    tracks: int = 2,
) -> bytes:
    """ftyp, mdat and moov (moov first when `faststart`); `mdat_header`: "32", "64" (a
    largesize mdat) or "open" (size 0, to the end of the file). The media is cut into two
    chunks a track, interleaved as muxers lay them out (track 1, 2, ..., 1, 2, ...), each
    chunk of two samples: the last track's last chunk ends at the media's last byte."""
    head = ftyp()
    wrap = {"32": box, "64": large_box, "open": open_box}[mdat_header]
    mdat_head = len(wrap("mdat", b""))
    step = len(media) // (2 * tracks)
    bounds = [k * step for k in range(2 * tracks)] + [len(media)]
    chunks = list(itertools.pairwise(bounds))

    def movie(payload_at: int) -> bytes:
        traks = []
        for t in range(tracks):
            mine = chunks[t::tracks]
            sizes = [n for a, b in mine for n in ((b - a) // 2, b - a - (b - a) // 2)]
            offsets = [payload_at + a for a, _ in mine]
            traks.append(trak(offsets, sizes=sizes, per_chunk=[(1, 2)]))
        return moov(traks)

    if faststart:
        size = len(movie(0))
        return head + movie(len(head) + size + mdat_head) + wrap("mdat", media)
    return head + wrap("mdat", media) + movie(len(head) + mdat_head)


def open_faststart(media: int, *tracks: Callable[[int], bytes]) -> bytes:
    """ftyp, a moov of `tracks` (each built given where the media starts) and an mdat of
    `media` bytes with size 0 (to the end of the file), as a fast-start writer or a copy of
    one leaves it: the boxes tile every cut of the media, the tables alone say where it ends."""

    def movie(at: int) -> bytes:
        return moov([track(at) for track in tracks])

    at = len(ftyp()) + len(movie(0)) + 8
    return ftyp() + movie(at) + open_box("mdat", b"\x05" * media)


def fragmented_mp4(fragments: int = 3, sample: bytes = b"\x02" * 300) -> bytes:
    """ftyp, moov with mvex (no samples), then moof/mdat pairs."""
    out = ftyp("iso5") + moov([trak([])], fragmented=True)
    for n in range(fragments):
        out += box("moof", box("mfhd", struct.pack(">II", 0, n + 1)) + box("traf", bytes(40)))
        out += box("mdat", sample)
    return out


def mfra(tracks: int = 1) -> bytes:
    """The random access index a muxer writes last when it closes a fragmented file: a tfra
    per track (no entries here) and the mfro that gives the mfra's size."""
    tfra = b"".join(box("tfra", struct.pack(">IIII", 1 << 24, t + 1, 0, 0)) for t in range(tracks))
    return box("mfra", tfra + box("mfro", struct.pack(">II", 0, 8 + len(tfra) + 16)))


def fragment_boundaries(data: bytes) -> list[int]:
    """Offsets just after each whole mdat of a fragmented_mp4 (where it is whole)."""
    ends, offset = [], 0
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        offset += size
        if kind == b"mdat":
            ends.append(offset)
    return ends


# ---- MXF ------------------------------------------------------------------------------

PARTITION = bytes.fromhex("060e2b34020501010d01020101")
HEADER, BODY, FOOTER = 0x02, 0x03, 0x04
OPEN_INCOMPLETE, CLOSED_COMPLETE = 0x01, 0x04
RIP_KEY = bytes.fromhex("060e2b34020501010d01020101110100")
PRIMER_KEY = bytes.fromhex("060e2b34020501010d01020101050100")
ESSENCE_KEY = bytes.fromhex("060e2b34010201010d01030115010500")
OP1A = bytes.fromhex("060e2b34040101010d01020101010900")


def ber(length: int) -> bytes:
    """A 4-byte BER length, as most muxers write them."""
    return b"\x83" + length.to_bytes(3, "big")


def klv(key: bytes, value: bytes) -> bytes:
    return key + ber(len(value)) + value


def partition_pack(
    kind: int,
    status: int,
    *,
    this: int,
    previous: int = 0,
    footer: int = 0,
    header_bytes: int = 0,
    index_bytes: int = 0,
) -> bytes:
    value = struct.pack(
        ">HHIQQQQQIQI", 1, 3, 1, this, previous, footer, header_bytes, index_bytes, 0, 0, 1
    )
    value += OP1A + struct.pack(">II", 0, 16)  # operational pattern, empty container batch
    return klv(PARTITION + bytes([kind, status, 0]), value)


def mxf(
    *,
    bodies: int = 1,
    header_status: int = CLOSED_COMPLETE,
    footer_in_header: bool = True,
    footer: bool = True,
    rip: bool = True,
    run_in: bytes = b"",
    essence: bytes = b"\x03" * 500,
) -> bytes:
    """Header partition (with metadata), `bodies` body partitions of essence, a footer
    partition (with metadata) and a Random Index Pack, laid out as a closing writer leaves
    them; each of footer and RIP can be left out, as a writer cut short leaves it."""
    metadata = klv(PRIMER_KEY, b"\x00" * 40)
    pack_size = len(partition_pack(HEADER, 1, this=0))
    parts = [len(metadata) + pack_size]  # where the first body partition starts
    for _ in range(bodies):
        parts.append(parts[-1] + pack_size + len(klv(ESSENCE_KEY, essence)))
    footer_at = parts[-1]
    offsets = [0, *parts[:-1]]
    header = partition_pack(
        HEADER, header_status, this=0, footer=footer_at if footer_in_header else 0,
        header_bytes=len(metadata),
    )  # fmt: skip
    out = run_in + header + metadata
    for n in range(bodies):
        pack = partition_pack(BODY, CLOSED_COMPLETE, this=offsets[n + 1], previous=offsets[n])
        out += pack + klv(ESSENCE_KEY, essence)
    if footer:
        out += partition_pack(
            FOOTER, CLOSED_COMPLETE, this=footer_at, previous=offsets[-1], footer=footer_at,
            header_bytes=len(metadata),
        ) + metadata  # fmt: skip
        offsets.append(footer_at)
    if rip:
        out += random_index_pack(offsets)
    return out


def random_index_pack(offsets: Sequence[int]) -> bytes:
    pairs = b"".join(struct.pack(">IQ", 1, o) for o in offsets)
    length = 16 + 4 + len(pairs) + 4
    return RIP_KEY + ber(len(pairs) + 4) + pairs + struct.pack(">I", length)


# ---- MKV / WebM (EBML) ----------------------------------------------------------------

EBML_ID = b"\x1a\x45\xdf\xa3"
SEGMENT_ID = b"\x18\x53\x80\x67"
UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"


def element(ident: bytes, payload: bytes, size: bytes | None = None) -> bytes:
    """An EBML element with an 8-byte size (as ffmpeg writes a segment's), or `size` as given."""
    if size is None:
        size = (len(payload) | 1 << 56).to_bytes(8, "big")
    return ident + size + payload


def mkv(doctype: str = "matroska", *, unknown_size: bool = False, frames: int = 5) -> bytes:
    """EBML header (version, DocType), then a Segment with Info and one Cluster of blocks."""
    fields = b"\x42\x86\x81\x01" + b"\x42\x82" + bytes([0x80 | len(doctype)]) + doctype.encode()
    header = element(EBML_ID, fields, bytes([0x80 | len(fields)]))
    info = element(b"\x15\x49\xa9\x66", b"\x2a\xd7\xb1\x83\x0f\x42\x40")
    cluster = element(b"\x1f\x43\xb6\x75", b"\xe7\x81\x00" + b"\xa3\x84\x81\x00\x00\x80" * frames)
    return header + element(SEGMENT_ID, info + cluster, UNKNOWN_SIZE if unknown_size else None)


# ---- AVI (RIFF, OpenDML) --------------------------------------------------------------


def chunk(tag: str, data: bytes) -> bytes:
    pad = b"\x00" if len(data) % 2 else b""
    return tag.encode() + struct.pack("<I", len(data)) + data + pad


def riff_list(kind: str, *children: bytes) -> bytes:
    return chunk("LIST", kind.encode() + b"".join(children))


def indx(entries: int) -> bytes:
    """An OpenDML super index with `entries` entries in use (of 4 reserved)."""
    head = struct.pack("<HBBI4s", 4, 0, 0, entries, b"00dc") + bytes(12)
    return chunk("indx", head + bytes(16 * 4))


def avi_header_list(index: str = "idx1", entries: int = 1) -> bytes:
    """The header list (hdrl): avih and one stream list, whose super index is an `indx` with
    `entries` entries in use when `index` is "indx", else JUNK holding its place."""
    junk = chunk("JUNK", bytes(len(indx(0)) - 8))
    super_index = indx(entries) if index == "indx" else junk
    strl = riff_list("strl", chunk("strh", bytes(56)), chunk("strf", bytes(40)), super_index)
    return riff_list("hdrl", chunk("avih", bytes(56)), strl)


def avi(
    *,
    index: str = "idx1",
    frames: int = 6,
    avix: int = 0,
    frame: bytes = b"\x04" * 101,
) -> bytes:
    """RIFF 'AVI ' with hdrl, movi and `idx1` (index="idx1"), or an OpenDML `indx` in the
    stream list ("indx"; `avix` more RIFF 'AVIX' chunks follow), an indx with no entries in
    use ("empty indx"), or neither ("none": what ffmpeg leaves before its trailer, the place
    of its indx held by JUNK)."""
    entries = 0 if index == "empty indx" else avix + 1
    hdrl = avi_header_list("indx" if index.endswith("indx") else index, entries)
    movi = riff_list("movi", *(chunk("00dc", frame) for _ in range(frames)))
    idx = chunk("idx1", bytes(16 * frames)) if index == "idx1" else b""
    out = chunk("RIFF", b"AVI " + hdrl + movi + idx)
    for _ in range(avix):
        out += chunk("RIFF", b"AVIX" + riff_list("movi", chunk("00dc", frame)))
    return out


def set_riff_size(data: bytes, size: int, at: int = 0) -> bytes:
    return data[: at + 4] + struct.pack("<I", size) + data[at + 8 :]


# ---- a multi-GB file, virtually -------------------------------------------------------


class Sparse:
    """A Reader over a virtual file: `regions` (offset -> bytes) and zeros elsewhere. Counts
    reads and bytes, as `Counting` does."""

    def __init__(self, regions: dict[int, bytes]) -> None:
        self.regions = regions
        self.reads = 0
        self.bytes = 0

    def read_at(self, offset: int, length: int) -> bytes:
        self.reads += 1
        out = bytearray(length)
        for start, data in self.regions.items():
            lo, hi = max(start, offset), min(start + len(data), offset + length)
            if lo < hi:
                out[lo - offset : hi - offset] = data[lo - start : hi - start]
        self.bytes += length
        return bytes(out)


class Counting:
    """A Reader over bytes that counts what is read through it, and may give fewer bytes
    than asked past `short_after` (a file that shrank)."""

    def __init__(self, data: bytes, short_after: int | None = None) -> None:
        self.data = data
        self.short_after = short_after
        self.reads = 0
        self.bytes = 0

    def read_at(self, offset: int, length: int) -> bytes:
        self.reads += 1
        out = self.data[offset : offset + length]
        if self.short_after is not None:
            out = out[: max(0, self.short_after - offset)]
        self.bytes += len(out)
        return out
