"""Streamed sha256 of a file: constant memory whatever its size."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

CHUNK_SIZE = 1024 * 1024


@contextlib.contextmanager
def _opened(source: Path | BinaryIO) -> Iterator[BinaryIO]:
    if isinstance(source, Path):
        with open(source, "rb") as fileobj:
            yield fileobj
    else:
        source.seek(0)  # a file held open by the worker: all of it, from the start
        yield source


def sha256_file(source: Path | BinaryIO, on_chunk: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with _opened(source) as fileobj:
        while chunk := fileobj.read(CHUNK_SIZE):
            digest.update(chunk)
            if on_chunk is not None:
                on_chunk(len(chunk))
    return digest.hexdigest()
