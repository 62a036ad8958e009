"""Record types and wire-level helpers for the fake MAVI server (tests/fakemavi.py).

Streaming request-body readers, a multipart/form-data parser, a quiet keep-alive request
handler base and a threading server that can cut its open connections. Nothing here holds a
whole request body in memory: bodies are read in chunks (Content-Length or chunked) and the
multipart parser hashes the ``file`` part incrementally, keeping its bytes only on request.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import BaseRequestHandler
from typing import Any

CHUNK = 64 * 1024
DEFAULT_TTL = 93600
FAULT_KINDS = frozenset(
    {"status", "html", "malformed", "drop", "slow", "hold", "rate_limit_429", "rate_limit_400"}
    | {"expired", "xml_error"}
)
MAX_HEADER_BLOCK = 16 * 1024
_XML_CODES = {400: "InvalidArgument", 403: "AccessDenied", 404: "NoSuchKey", 429: "SlowDown"}
_XML_CODES |= {500: "InternalError", 503: "ServiceUnavailable"}


@dataclass
class Fault:
    kind: str
    status: int = 500
    retry_after: float | None = None
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")


@dataclass(frozen=True)
class UploadRecord:
    asset_id: str
    filename: str  # from the URL path
    size: int
    sha256: str
    body: bytes | None  # the file part's bytes when store_bodies=True
    content_type: str  # Content-Type of the multipart "file" part ("" if none)
    completed_at: float  # time.monotonic()
    chunked: bool = False  # the request used Transfer-Encoding: chunked
    part_filename: str | None = None  # filename= of the file part, if any


@dataclass
class AssetRecord:
    asset_id: str
    filename: str
    signed_at: float  # time.monotonic()
    upload_status: str = "WAITING"  # what the next metadata GET answers
    signature: str = field(default="", repr=False)
    expires_in: int = DEFAULT_TTL
    expires_at: float = 0.0  # time.monotonic() deadline of the signed URL
    size: int = 0
    uploads_completed: int = 0
    metadata_gets: int = 0
    create_ms: int = 0
    modify_ms: int = 0
    script: list[str] = field(default_factory=list, repr=False)
    script_pos: int = 0


@dataclass(frozen=True)
class CallRecord:
    time: float  # time.monotonic() when the request was received
    endpoint: str  # sign | storage | metadata | other
    method: str
    path: str  # without the query string
    status: int  # 0 = no response (dropped by the fake, or the client cut the body short)
    had_authorization: bool


class BodyIncomplete(Exception):
    """The client stopped sending before the end of the body."""


class BadBody(Exception):
    """The body framing (chunked encoding or multipart) is malformed."""


def iter_fixed(rfile: io.BufferedIOBase, length: int, chunk: int = CHUNK) -> Iterator[bytes]:
    """Yield exactly ``length`` bytes from ``rfile`` in pieces of at most ``chunk`` bytes."""
    remaining = length
    while remaining > 0:
        data = rfile.read(min(chunk, remaining))
        if not data:
            raise BodyIncomplete(f"{remaining} of {length} bytes missing")
        remaining -= len(data)
        yield data


def iter_chunked(rfile: io.BufferedIOBase, chunk: int = CHUNK) -> Iterator[bytes]:
    """Yield the decoded payload of a ``Transfer-Encoding: chunked`` body."""
    while True:
        line = rfile.readline(1024)
        if not line:
            raise BodyIncomplete("chunk size line missing")
        if not line.endswith(b"\n"):
            raise BadBody("chunk size line too long")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise BadBody(f"bad chunk size {line!r}") from exc
        if size == 0:
            break
        yield from iter_fixed(rfile, size, chunk)
        end = rfile.readline(3)
        if not end:
            raise BodyIncomplete("chunk terminator missing")
        if end not in (b"\r\n", b"\n"):
            raise BadBody("chunk not followed by CRLF")
    for _ in range(100):  # trailer section, ended by an empty line
        line = rfile.readline(8192)
        if not line:
            raise BodyIncomplete("chunked trailer missing")
        if line in (b"\r\n", b"\n"):
            return
    raise BadBody("too many trailer lines")


def multipart_boundary(content_type: str) -> str | None:
    """The boundary of a ``multipart/form-data`` Content-Type, else None."""
    msg = Message()
    msg["Content-Type"] = content_type
    if msg.get_content_type() != "multipart/form-data":
        return None
    boundary = msg.get_param("boundary")
    return boundary if isinstance(boundary, str) and boundary else None


class MultipartFileSink:
    """Incremental multipart/form-data parser that digests the first part named ``field``.

    Feed it the body in arbitrary pieces with :meth:`feed`, then call :meth:`finish`.
    Delimiters split across pieces are handled by keeping back a tail shorter than the
    delimiter until more bytes arrive.
    """

    def __init__(self, boundary: str, *, keep: bool, field: str = "file") -> None:
        self._delim = b"\r\n--" + boundary.encode("latin-1")
        # A leading CRLF lets the first delimiter (which has none) match like the others.
        self._buf = bytearray(b"\r\n")
        self._state = "preamble"  # preamble | delim | headers | part | end
        self._field = field
        self._in_file = False
        self.found = False  # the file part was complete (its closing delimiter was seen)
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.body: bytearray | None = bytearray() if keep else None
        self.filename: str | None = None
        self.content_type = ""

    def feed(self, data: bytes) -> None:
        self._buf += data
        while self._step():
            pass

    def finish(self) -> None:
        """Raise :class:`BadBody` unless the body was a complete multipart with the file."""
        if self._state != "end":
            raise BadBody("multipart body not terminated by the closing delimiter")
        if not self.found:
            raise BadBody(f"no form-data part named {self._field!r}")

    def _emit(self, data: bytes | bytearray) -> None:
        if self._in_file and data:
            self.sha256.update(data)
            self.size += len(data)
            if self.body is not None:
                self.body += data

    def _step(self) -> bool:
        """Advance the state machine; True when it should be called again."""
        buf = self._buf
        if self._state in ("preamble", "part"):
            idx = buf.find(self._delim)
            if idx < 0:
                safe = len(buf) - (len(self._delim) - 1)
                if safe > 0:
                    self._emit(buf[:safe])
                    del buf[:safe]
                return False
            self._emit(buf[:idx])
            del buf[: idx + len(self._delim)]
            if self._in_file:
                self._in_file = False
                self.found = True
            self._state = "delim"
            return True
        if self._state == "delim":
            if len(buf) < 2:
                return False
            if buf[:2] == b"--":
                self._state = "end"
                buf.clear()
                return False
            idx = buf.find(b"\r\n")
            if idx < 0:
                if len(buf) > 1024:
                    raise BadBody("garbage after a multipart delimiter")
                return False
            if buf[:idx].strip(b" \t"):
                raise BadBody("garbage after a multipart delimiter")
            del buf[: idx + 2]
            self._state = "headers"
            return True
        if self._state == "headers":
            if len(buf) < 2:
                return False
            if buf[:2] == b"\r\n":
                block = b""
                del buf[:2]
            else:
                idx = buf.find(b"\r\n\r\n")
                if idx < 0:
                    if len(buf) > MAX_HEADER_BLOCK:
                        raise BadBody("multipart part headers too long")
                    return False
                block = bytes(buf[: idx + 2])
                del buf[: idx + 4]
            self._start_part(block)
            self._state = "part"
            return True
        buf.clear()  # epilogue after the closing delimiter is ignored
        return False

    def _start_part(self, block: bytes) -> None:
        headers = BytesHeaderParser().parsebytes(block)
        name = headers.get_param("name", header="content-disposition")
        if name == self._field and not self.found:
            self._in_file = True
            filename = headers.get_param("filename", header="content-disposition")
            self.filename = filename if isinstance(filename, str) else None
            self.content_type = str(headers.get("Content-Type", ""))


# --------------------------------------------------------------------------- HTTP plumbing
def xml_error(code: str, message: str) -> bytes:
    return (
        "<?xml version='1.0' encoding='UTF-8'?>"
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class WireHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler with streaming body and response helpers; silent."""

    protocol_version = "HTTP/1.1"
    server_version = "FakeMavi/1.0"
    sys_version = ""
    timeout = 120
    disable_nagle_algorithm = True  # headers and body are separate writes
    chunk_size = CHUNK

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # --------------------------------------------------------------- request body
    def is_chunked(self) -> bool:
        return "chunked" in self.headers.get("Transfer-Encoding", "").lower()

    def content_length(self) -> int:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as exc:
            raise BadBody("bad Content-Length") from exc
        if length < 0:
            raise BadBody("negative Content-Length")
        return length

    def body_pieces(self, limit: int | None = None) -> Iterator[bytes]:
        """The body in pieces of at most ``chunk_size`` (only ``limit`` bytes if not chunked)."""
        if self.is_chunked():
            return iter_chunked(self.rfile, self.chunk_size)
        length = self.content_length() if limit is None else min(limit, self.content_length())
        return iter_fixed(self.rfile, length, self.chunk_size)

    def read_body(self, max_size: int = 8 << 20) -> bytes:
        out = bytearray()
        for piece in self.body_pieces():
            out += piece
            if len(out) > max_size:
                raise BadBody("request body too large")
        return bytes(out)

    def drain(self) -> None:
        for _ in self.body_pieces():
            pass

    def read_multipart(self, boundary: str, *, keep: bool) -> MultipartFileSink:
        """Stream the whole body through a sink; BadBody (body fully read) if malformed."""
        sink = MultipartFileSink(boundary, keep=keep)
        error: BadBody | None = None
        for piece in self.body_pieces():
            if error is None:
                try:
                    sink.feed(piece)
                except BadBody as exc:
                    error = exc
        if error is not None:
            raise error
        sink.finish()
        return sink

    # ------------------------------------------------------------------ responses
    def on_respond(self, status: int) -> None:
        """Hook run just before a response (status 0: hang-up) is sent."""

    def respond(
        self, status: int, body: bytes, ctype: str | None, headers: dict[str, str] | None = None
    ) -> None:
        self.on_respond(status)
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def send_json(
        self, status: int, payload: object, headers: dict[str, str] | None = None
    ) -> None:
        self.respond(status, json.dumps(payload).encode(), "application/json", headers)

    def send_json_error(self, status: int, msg: str, headers: dict[str, str] | None = None) -> None:
        payload = {"code": status, "msg": msg, "data": None, "success": False, "failed": True}
        self.send_json(status, payload, headers)

    def send_xml(
        self, status: int, code: str, msg: str, headers: dict[str, str] | None = None
    ) -> None:
        self.respond(status, xml_error(code, msg), "application/xml; charset=UTF-8", headers)

    def send_fault(self, kind: str, status: int, retry_after: float | None, storage: bool) -> None:
        """Answer with an injected fault (see tests/fakemavi.py ``Fault``); never "slow"."""
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = str(int(retry_after) if retry_after % 1 == 0 else retry_after)
        if kind == "drop":
            self.hang_up()
        elif kind == "html":
            title = f"{status} {phrase(status)}"
            page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1>"
            page += "<p>upstream connect error or disconnect/reset before headers</p></body></html>"
            self.respond(status, page.encode(), "text/html; charset=utf-8", headers)
        elif kind == "malformed":
            self.respond(200, b"{not json", "application/json", headers)
        elif kind == "rate_limit_400":
            self.send_json_error(400, "Request has exceeded the limit.", headers)
        elif kind == "rate_limit_429" and storage:
            self.send_xml(429, "SlowDown", "Please reduce your request rate.", headers)
        elif kind == "rate_limit_429":
            self.send_json_error(429, "Too Many Requests", headers)
        elif kind == "expired":
            self.send_xml(400, "ExpiredToken", "The provided token has expired.", headers)
        elif kind == "xml_error":
            msg = "The request signature we calculated does not match the signature you provided."
            self.send_xml(403 if status == 500 else status, "SignatureDoesNotMatch", msg, headers)
        elif storage:
            self.send_xml(status, _XML_CODES.get(status, "Error"), phrase(status), headers)
        else:
            self.send_json_error(status, phrase(status), headers)

    def hang_up(self) -> None:
        """Close the connection without sending anything."""
        self.on_respond(0)
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class TrackingServer(ThreadingHTTPServer):
    """Threading server whose open connections can all be cut on stop (keep-alive clients)."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: Callable[[Any, Any, TrackingServer], BaseRequestHandler],
    ) -> None:
        super().__init__(address, handler)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        if isinstance(request, socket.socket):
            with self._open_lock:
                self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        if isinstance(request, socket.socket):
            with self._open_lock:
                self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        pass  # quiet: clients hanging up mid-request are part of the tests

    def close_connections(self) -> None:
        with self._open_lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
