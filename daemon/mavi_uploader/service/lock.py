"""One daemon per state dir: an exclusive flock on `daemon.lock`, holding the owner's pid."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path

LOCK_NAME = "daemon.lock"


class AlreadyRunning(Exception):
    """Another daemon holds the lock; the CLI exits 3."""


@dataclass(frozen=True)
class LockHolder:
    running: bool
    pid: int | None


class StateDirLock:
    """Held for the daemon's whole life; released by the kernel if the process dies."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self, attempts: int = 5) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        # A `status` probe holds the lock for microseconds; a few quick retries ride that out.
        for attempt in range(attempts):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == attempts - 1:
                    holder = _read_pid(fd)
                    os.close(fd)
                    who = f"pid {holder}" if holder else "another process"
                    raise AlreadyRunning(
                        f"another mavi-uploader daemon ({who}) already uses the state dir "
                        f"{self.path.parent}; stop it first or set MAVI_UPLOADER_STATE_DIR"
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return int(os.read(fd, 32).decode().strip() or "0") or None
    except (OSError, ValueError):
        return None


def probe(state_dir: Path) -> LockHolder:
    """Is a daemon holding `state_dir`? (for `status`; never creates anything)."""
    path = state_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return LockHolder(False, None)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return LockHolder(True, _read_pid(fd))
        fcntl.flock(fd, fcntl.LOCK_UN)
        return LockHolder(False, None)
    finally:
        os.close(fd)
