"""sha256 of the bytes an upload sends, so a file is read once, not once to hash and once to send.

The hashing runs on a thread of its own: hashlib releases the GIL on large buffers, so it
overlaps with the socket send instead of adding to it (at 1 MiB chunks sha256 runs at about
the speed a local storage server takes the bytes). Chunks are immutable `bytes`, handed over
through a short queue: at most `depth` chunks wait, so memory stays flat whatever the size.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from types import TracebackType

_END = b""  # never a real chunk: the body hands over only non-empty reads


class SentDigest:
    """`update()` chunks in order, then `hexdigest()`; use it as a context manager so the
    thread ends even when the upload fails half-way."""

    def __init__(self, depth: int = 4) -> None:
        self._chunks: queue.Queue[bytes] = queue.Queue(maxsize=depth)
        self._sha = hashlib.sha256()
        self._thread = threading.Thread(target=self._run, name="sent-sha256", daemon=True)
        self._thread.start()
        self._ended = False

    def update(self, chunk: bytes) -> None:
        if chunk:
            self._chunks.put(chunk)

    def hexdigest(self) -> str:
        """The digest of every chunk so far; no update may follow."""
        self._end()
        return self._sha.hexdigest()

    def _run(self) -> None:
        while chunk := self._chunks.get():
            self._sha.update(chunk)

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._chunks.put(_END)
            self._thread.join()

    def __enter__(self) -> SentDigest:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._end()
