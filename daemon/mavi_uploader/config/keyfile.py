"""The API key (and the webhook secret): read from a key file (bounded, BOM-tolerant) and
checked for HTTP headers.

The key travels in an `Authorization` header, which carries only visible ASCII: anything else
fails deep inside `requests` on every call, so it is refused here, where the message can name
the file and the fix.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

# A MAVI key is a few dozen characters; a key file larger than this is some other file.
MAX_KEY_FILE_BYTES = 4096
_BOM = "\ufeff"  # Windows editors start "UTF-8" files with it
_NOT_ALONE = "it must hold the key alone, on one line"


class KeyProblem(Exception):
    """Why a key (or its file) is unusable, with the fix; never quotes the key."""


def clean_key(raw: str, what: str = "the MAVI API key") -> str:
    """The key without a BOM and surrounding whitespace; KeyProblem unless it is visible ASCII."""
    key = raw.strip().removeprefix(_BOM).strip()
    if not key:
        raise KeyProblem(f"is empty; put {what} in it")
    for position, char in enumerate(key, start=1):
        if not "!" <= char <= "~":  # 0x21-0x7E: what a header value may hold unquoted
            what = "whitespace" if char.isspace() else f"the character U+{ord(char):04X}"
            raise KeyProblem(
                f"holds {what} at position {position}, which an HTTP header cannot carry;"
                f" {_NOT_ALONE}, in plain ASCII"
            )
    return key


def read_key_file(path: Path, what: str = "the MAVI API key") -> tuple[str, int]:
    """(key, st_mode) of a key file; KeyProblem when it cannot be read or holds no usable key.

    Reads at most MAX_KEY_FILE_BYTES + 1 bytes, and never waits: O_NONBLOCK keeps a FIFO with
    no writer from blocking the open, and anything but a regular file is refused.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise KeyProblem(_unreadable(exc)) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise KeyProblem(f"is not a regular file; {_NOT_ALONE}")
        data = _read_at_most(fd, MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise KeyProblem(_unreadable(exc)) from None
    finally:
        os.close(fd)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyProblem(f"is larger than {MAX_KEY_FILE_BYTES} bytes; {_NOT_ALONE}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyProblem(
            f"is not UTF-8 text (UTF-16?); save it as plain text (ASCII or UTF-8): {_NOT_ALONE}"
        ) from None
    return clean_key(text, what), mode


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(fd, left)  # a short read is not the end: loop until EOF or the cap
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _unreadable(exc: OSError) -> str:
    return f"cannot be read ({exc.strerror}); check the path and that the daemon's user may read it"
