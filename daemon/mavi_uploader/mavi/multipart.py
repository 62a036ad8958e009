"""A streaming multipart/form-data body for one file field, with exact Content-Length.

Hand-written rather than requests-toolbelt's MultipartEncoder: we need large reads (1 MiB,
so the CPU cost per GB stays close to curl's), a per-chunk hook (progress, lease renewal,
cancellation) and a hard check that the file did not shrink while it was being sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import BinaryIO

from mavi_uploader.core.records import upload_name

CHUNK_SIZE = 1024 * 1024


class FileShrank(Exception):
    """The file got shorter while it was being sent; the upload is not usable."""


class FileReadFailed(Exception):
    """Reading the file failed mid-body. Deliberately not an OSError: urllib3 would report an
    OSError raised inside the body as a dropped connection, hiding a disk error."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _quote(value: str) -> str:
    # RFC 7578: names are quoted strings; escape what would end or break the quoted string.
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


class MultipartFileBody:
    """File-like body: preamble, exactly `size` bytes of the file, epilogue.

    `on_chunk(n)` runs after each file chunk is read (may raise to abort the upload);
    `on_bytes(chunk)` gets the chunk itself first (the sha256 of what is sent).
    """

    def __init__(
        self,
        fileobj: BinaryIO,
        size: int,
        filename: str,
        *,
        field: str = "file",
        content_type: str = "application/octet-stream",
        on_chunk: Callable[[int], None] | None = None,
        on_bytes: Callable[[bytes], None] | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.boundary = f"mavi-{uuid.uuid4().hex}"
        safe_name = _quote(upload_name(filename))
        self._head = (
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="{field}"; filename="{safe_name}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        self._tail = f"\r\n--{self.boundary}--\r\n".encode()
        self._file = fileobj
        self._size = size
        self._remaining = size
        self._on_chunk = on_chunk
        self._on_bytes = on_bytes
        self._chunk_size = chunk_size
        self._stage = 0  # 0 head, 1 file, 2 tail, 3 done

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    @property
    def finished(self) -> bool:
        """Every byte of the body has been handed to the connection."""
        return self._stage == 3

    def __len__(self) -> int:
        return len(self._head) + self._size + len(self._tail)

    def read(self, _hint: int = -1) -> bytes:
        # The hint is ignored on purpose: http.client asks for 8-16 KiB at a time, and larger
        # reads cut the per-GB CPU cost several-fold. Callers accept longer blocks.
        if self._stage == 0:
            self._stage = 1
            return self._head
        if self._stage == 1:
            if self._remaining > 0:
                try:
                    chunk = self._file.read(min(self._chunk_size, self._remaining))
                except OSError as exc:
                    raise FileReadFailed(exc) from exc
                if not chunk:
                    raise FileShrank(
                        f"file ended {self._remaining} bytes early: it shrank during the upload"
                    )
                self._remaining -= len(chunk)
                if self._on_bytes is not None:
                    self._on_bytes(chunk)
                if self._on_chunk is not None:
                    self._on_chunk(len(chunk))
                return chunk
            self._stage = 2
        if self._stage == 2:
            self._stage = 3
            return self._tail
        return b""
