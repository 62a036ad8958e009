"""MultipartFileBody: exact length, parseable framing, exact bytes, shrink/grow, chunk hook."""

from __future__ import annotations

import email.policy
import io
import random
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from mavi_uploader.mavi.multipart import CHUNK_SIZE, FileShrank, MultipartFileBody


def drain(body: MultipartFileBody, hint: int = 8192) -> bytes:
    out = bytearray()
    while chunk := body.read(hint):
        out += chunk
    return bytes(out)


def parse(body: MultipartFileBody, raw: bytes) -> EmailMessage:
    """Parse with the stdlib MIME parser, as a form-data server would."""
    head = f"Content-Type: {body.content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    assert isinstance(message, EmailMessage)
    assert message.get_content_type() == "multipart/form-data"
    assert not message.defects
    return message


def only_part(message: EmailMessage) -> EmailMessage:
    parts = list(message.iter_parts())
    assert len(parts) == 1
    part = parts[0]
    assert isinstance(part, EmailMessage)
    return part


def data_of(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.mark.parametrize("size", [0, 1, 1000, CHUNK_SIZE - 1, CHUNK_SIZE, 2 * CHUNK_SIZE + 3])
def test_len_is_exactly_the_bytes_produced(size: int) -> None:
    data = data_of(size)
    body = MultipartFileBody(io.BytesIO(data), size, "v.mp4")
    expected_len = len(body)
    raw = drain(body)
    assert len(raw) == expected_len
    assert body.read() == b""  # stays at EOF
    part = only_part(parse(body, raw))
    assert part.get_payload(decode=True) == data


def test_framing_field_name_and_content_type() -> None:
    data = b"\x00\x01binary\r\n--not-a-boundary\r\n\xff"
    body = MultipartFileBody(io.BytesIO(data), len(data), "clip.mp4")
    raw = drain(body)

    assert body.content_type == f"multipart/form-data; boundary={body.boundary}"
    assert raw.startswith(f"--{body.boundary}\r\n".encode())
    assert raw.endswith(f"\r\n--{body.boundary}--\r\n".encode())
    assert raw.count(body.boundary.encode()) == 2
    part = only_part(parse(body, raw))
    assert part.get_content_disposition() == "form-data"
    assert part.get_param("name", header="content-disposition") == "file"
    assert part.get_filename() == "clip.mp4"
    assert part.get_content_type() == "application/octet-stream"
    assert part.get_payload(decode=True) == data


def test_custom_field_and_content_type() -> None:
    body = MultipartFileBody(
        io.BytesIO(b"abc"), 3, "a.mp4", field="upload", content_type="video/mp4"
    )
    part = only_part(parse(body, drain(body)))
    assert part.get_param("name", header="content-disposition") == "upload"
    assert part.get_content_type() == "video/mp4"


def test_boundaries_are_unique() -> None:
    bodies = [MultipartFileBody(io.BytesIO(b""), 0, "a") for _ in range(20)]
    assert len({b.boundary for b in bodies}) == 20


@pytest.mark.parametrize(
    "filename",
    [
        "plain.mp4",
        "with spaces and (parens).mov",
        "été — 日本語 🎬.mkv",
        "semi;colon=equals.mp4",
        "apostrophe's.mp4",
    ],
)
def test_filename_round_trips(filename: str) -> None:
    body = MultipartFileBody(io.BytesIO(b"xyz"), 3, filename)
    raw = drain(body)
    assert filename.encode("utf-8") in raw  # raw UTF-8, as browsers send it (RFC 7578 4.2)
    part = only_part(parse(body, raw))
    assert part.get_filename() == filename
    assert part.get_payload(decode=True) == b"xyz"


def test_quotes_in_filename_cannot_break_the_header() -> None:
    filename = 'say "cheese" now.mp4'
    body = MultipartFileBody(io.BytesIO(b"xyz"), 3, filename)
    part = only_part(parse(body, drain(body)))
    # Quotes are percent-encoded the way browsers do (WHATWG form encoding).
    received = part.get_filename()
    assert received == filename.replace('"', "%22")
    assert received.replace("%22", '"') == filename
    assert part.get_param("name", header="content-disposition") == "file"
    assert part.get_payload(decode=True) == b"xyz"


def test_line_breaks_in_filename_cannot_inject_headers() -> None:
    filename = "evil\r\nX-Injected: 1\r\n\r\nbody.mp4"
    body = MultipartFileBody(io.BytesIO(b"xyz"), 3, filename)
    part = only_part(parse(body, drain(body)))
    assert "X-Injected" not in part
    assert part.get_filename() == "evil%0D%0AX-Injected: 1%0D%0A%0D%0Abody.mp4"
    assert part.get_payload(decode=True) == b"xyz"


def test_backslash_in_filename_is_escaped_as_a_quoted_string() -> None:
    filename = "back\\slash.mp4"
    body = MultipartFileBody(io.BytesIO(b"xyz"), 3, filename)
    part = only_part(parse(body, drain(body)))
    assert part.get_filename() == filename


def test_undecodable_filename_does_not_crash() -> None:
    # os.listdir hands back undecodable bytes as surrogates; the header must still encode.
    filename = "bad\udcff.mp4"
    body = MultipartFileBody(io.BytesIO(b"xyz"), 3, filename)
    raw = drain(body)
    raw.decode("utf-8")  # the whole head is valid UTF-8
    assert only_part(parse(body, raw)).get_filename() == "bad\ufffd.mp4"


def test_file_that_shrinks_raises() -> None:
    data = data_of(3000)
    body = MultipartFileBody(io.BytesIO(data[:2500]), 3000, "v.mp4", chunk_size=1000)
    body.read()  # head
    assert body.read() == data[:1000]
    assert body.read() == data[1000:2000]
    assert body.read() == data[2000:2500]
    with pytest.raises(FileShrank, match="500 bytes early"):
        body.read()


def test_empty_file_that_should_have_bytes_raises() -> None:
    body = MultipartFileBody(io.BytesIO(b""), 10, "v.mp4")
    with pytest.raises(FileShrank):
        drain(body)


def test_file_that_grows_sends_exactly_size_bytes() -> None:
    data = data_of(5000)
    body = MultipartFileBody(io.BytesIO(data), 3210, "v.mp4", chunk_size=1000)
    raw = drain(body)
    assert len(raw) == len(body)
    assert only_part(parse(body, raw)).get_payload(decode=True) == data[:3210]


def test_reads_from_the_current_position() -> None:
    # The body sends `size` bytes from where the file object stands (callers open fresh).
    fileobj = io.BytesIO(b"0123456789")
    fileobj.seek(4)
    body = MultipartFileBody(fileobj, 6, "v.mp4")
    assert only_part(parse(body, drain(body))).get_payload(decode=True) == b"456789"


def test_on_chunk_reports_every_file_byte_once() -> None:
    seen: list[int] = []
    body = MultipartFileBody(
        io.BytesIO(data_of(3500)), 3500, "v.mp4", on_chunk=seen.append, chunk_size=1000
    )
    drain(body)
    assert seen == [1000, 1000, 1000, 500]
    assert sum(seen) == 3500


def test_on_chunk_is_not_called_for_an_empty_file() -> None:
    seen: list[int] = []
    drain(MultipartFileBody(io.BytesIO(b""), 0, "v.mp4", on_chunk=seen.append))
    assert seen == []


def test_default_chunk_is_large_regardless_of_hint() -> None:
    size = 3 * CHUNK_SIZE
    seen: list[int] = []
    body = MultipartFileBody(io.BytesIO(data_of(size)), size, "v.mp4", on_chunk=seen.append)
    drain(body, hint=8192)
    assert seen == [CHUNK_SIZE] * 3


def test_on_chunk_can_abort_the_body() -> None:
    class Cancelled(Exception):
        pass

    seen: list[int] = []

    def on_chunk(n: int) -> None:
        seen.append(n)
        if len(seen) == 2:
            raise Cancelled

    body = MultipartFileBody(
        io.BytesIO(data_of(5000)), 5000, "v.mp4", on_chunk=on_chunk, chunk_size=1000
    )
    with pytest.raises(Cancelled):
        drain(body)
    assert seen == [1000, 1000]
