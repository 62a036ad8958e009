"""The writer probe: does any process hold this file open for writing?

Size and mtime holding still is not enough: a camera or a screen recorder may pause longer
than settle_seconds with its file open, and a writer that preallocated the file keeps its
size fixed from the start. So the settle tick, the worker and after_upload also ask here.

Linux, first choice, a read lease: open the file read-only and `fcntl(F_SETLEASE, F_RDLCK)`.
The kernel refuses (EAGAIN) while any process, this one included, has the file open for
writing; otherwise the lease is released at once. It costs a few system calls and sees every
writer, whoever it runs as. While we hold it, a process opening the file for writing waits
for us (microseconds) and the kernel sends us SIGIO, whose default action ends the process.
So a lease is only taken while SIGIO is harmless: the daemon ignores it from its main thread
at start (`ignore_lease_breaks`); any other process (a test, a library user) gets the /proc
scan instead. Children inherit the ignored SIGIO: harmless, a program using SIGIO sets a
handler of its own.

Fallback, when the lease is refused (EACCES: another user's file without CAP_LEASE; EINVAL:
NFS or another file system without leases, or leases disabled) or not safe to take: scan
/proc/<pid>/fd for descriptors of the same file (st_dev and st_ino, not the name, so renames,
hard links and bind mounts are seen) and read their access mode from /proc/<pid>/fdinfo.
Processes we may not inspect (another user's, without CAP_SYS_PTRACE, or hidden by
hidepid) are skipped: the answer is then "no writer that we can see". The scan misses a
writable shared mapping whose descriptor was closed; the lease does not.

Other platforms (macOS, the BSDs): no probe; every answer is None and the settle rule alone
decides whether a file is complete.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

# Not a `sys.platform` test in each function: mypy would call the other branch unreachable.
LINUX = sys.platform == "linux"
if sys.platform == "linux":
    import fcntl

    def _set_lease(fd: int, kind: int) -> None:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, kind)

    _RDLCK, _UNLCK = fcntl.F_RDLCK, fcntl.F_UNLCK
else:

    def _set_lease(fd: int, kind: int) -> None:
        raise OSError(errno.ENOSYS, "no file leases on this platform")

    _RDLCK = _UNLCK = 0

# The lease is refused because the file is open for writing (EBUSY on some older kernels).
_OPEN_FOR_WRITING = {errno.EAGAIN, errno.EBUSY}
_WRITE_MODES = (os.O_WRONLY, os.O_RDWR)
_ACCESS_MODE = 0o3  # O_ACCMODE as Linux defines it (the /proc scan runs on Linux only)
BY_ANOTHER = "held open for writing by another process"

OpenFiles = dict[tuple[int, int], list[tuple[int, int]]]  # (st_dev, st_ino) -> [(pid, fd)]


@dataclass(frozen=True)
class Writer:
    """A process holds the file open for writing; `reason` is for people (logs, last_error)."""

    reason: str
    pid: int | None = None


class Probe(Protocol):
    """What the settle tick, the worker and after_upload need (tests pass fakes)."""

    def __call__(self, file: str | int) -> Writer | None: ...

    def batch(self) -> contextlib.AbstractContextManager[None]: ...


def ignore_lease_breaks() -> None:
    """Make a lease break harmless: SIGIO ignored. Main thread only (Python's rule)."""
    if LINUX:
        signal.signal(signal.SIGIO, signal.SIG_IGN)


def lease_breaks_harmless() -> bool:
    """Would this process survive the SIGIO a lease break sends (ignored or handled)?"""
    if not LINUX:
        return False
    handler = signal.getsignal(signal.SIGIO)
    return handler is signal.SIG_IGN or callable(handler)


class WriterProbe:
    """Answers "who holds this file open for writing?"; safe to share between threads.

    `lease` / `proc` switch a method off (tests force each); `while_leased` runs while the
    lease is held (tests widen that moment to let a writer break it).
    """

    def __init__(
        self,
        *,
        lease: bool = True,
        proc: bool = True,
        proc_root: str = "/proc",
        while_leased: Callable[[], None] | None = None,
    ) -> None:
        self._lease = lease
        self._proc = proc
        self._root = proc_root
        self._while_leased = while_leased
        self._local = threading.local()  # a batch's /proc snapshot belongs to its thread
        self.scans = 0  # /proc scans made, so tests can see a batch share one

    def __call__(self, file: str | int) -> Writer | None:
        """Who holds `file` (a path, or a descriptor open read-only) open for writing?

        None when nobody does, when the file is gone, or when we cannot tell (see above).
        """
        if not LINUX:
            return None
        try:
            st = os.fstat(file) if isinstance(file, int) else os.stat(file)
            held = self._lease_refused(file) if self._lease and lease_breaks_harmless() else None
        except OSError:
            return None  # gone, or not even stat-able: the callers' own checks say so
        if held is False:
            return None
        named = self._scan(st) if self._proc else None
        # The lease saw a writer but cannot name it; /proc can, unless it is hidden from us.
        return (named or Writer(BY_ANOTHER)) if held else named

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Probes inside share one /proc scan (the settle tick may probe hundreds of files)."""
        self._local.batching = True
        try:
            yield
        finally:
            self._local.batching = False
            self._local.snapshot = None

    # ---- the lease ---------------------------------------------------------------------

    def _lease_refused(self, file: str | int) -> bool | None:
        """Try a read lease: True if refused for a writer, False if granted, None if the
        lease cannot tell (refused for another reason, or the file is unreadable to us).
        Raises FileNotFoundError for a file that is gone."""
        if isinstance(file, int):
            return self._lease_once(file)
        try:
            # O_NONBLOCK: never wait for another process's write lease to be broken.
            fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except BlockingIOError:
            return True  # a write lease (a file server's) is held: its owner may write
        except FileNotFoundError:
            raise
        except OSError:
            return None
        try:
            return self._lease_once(fd)
        finally:
            os.close(fd)

    def _lease_once(self, fd: int) -> bool | None:
        try:
            _set_lease(fd, _RDLCK)
        except OSError as exc:
            # EACCES (not our file, no CAP_LEASE), EINVAL (NFS, leases off)...: /proc decides.
            return True if exc.errno in _OPEN_FOR_WRITING else None
        try:
            if self._while_leased is not None:
                self._while_leased()
        finally:
            # Held for microseconds; a writer that opened meanwhile waits only until here.
            with contextlib.suppress(OSError):
                _set_lease(fd, _UNLCK)
        return False

    # ---- the /proc scan ----------------------------------------------------------------

    def _scan(self, st: os.stat_result) -> Writer | None:
        """The processes we can inspect that hold the file of `st` open for writing."""
        snapshot: OpenFiles | None = getattr(self._local, "snapshot", None)
        if snapshot is None:
            snapshot = self._open_files()
            if getattr(self._local, "batching", False):
                self._local.snapshot = snapshot
        pids = sorted(
            {
                pid
                for pid, fd in snapshot.get((st.st_dev, st.st_ino), ())
                if _opened_for_writing(self._root, pid, fd, st.st_ino)
            }
        )
        if not pids:
            return None
        reason = f"held open for writing by pid {pids[0]} ({self._command(pids[0])})"
        if len(pids) > 1:
            reason += f" and {len(pids) - 1} other process{'es' if len(pids) > 2 else ''}"
        return Writer(reason, pids[0])

    def _open_files(self) -> OpenFiles:
        """Every regular file open in a process we may inspect, by (st_dev, st_ino)."""
        self.scans += 1
        found: OpenFiles = {}
        try:
            pids = [name for name in os.listdir(self._root) if name.isdigit()]
        except OSError:
            return found  # no /proc here (a container without it): nothing to see
        for pid in pids:
            fd_dir = f"{self._root}/{pid}/fd"
            try:
                fds = os.listdir(fd_dir)
            except OSError:
                continue  # exited, or not ours to inspect (another user's, hidepid)
            for fd in fds:
                try:
                    # stat() follows the magic link to the open file itself, even renamed.
                    target = os.stat(f"{fd_dir}/{fd}")
                except OSError:
                    continue
                if stat.S_ISREG(target.st_mode):
                    key = (target.st_dev, target.st_ino)
                    found.setdefault(key, []).append((int(pid), int(fd)))
        return found

    def _command(self, pid: int) -> str:
        try:
            with open(f"{self._root}/{pid}/comm", encoding="utf-8", errors="replace") as f:
                return f.read().strip() or "?"
        except OSError:
            return "?"


def _opened_for_writing(root: str, pid: int, fd: int, ino: int) -> bool:
    """Is descriptor `fd` of `pid` (still the file `ino`) open with write access?"""
    try:
        with open(f"{root}/{pid}/fdinfo/{fd}", encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return False  # closed since the scan, or the process is gone
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    try:
        if "ino" in fields and int(fields["ino"]) != ino:
            return False  # the descriptor number was reused for another file since the scan
        return (int(fields["flags"], 8) & _ACCESS_MODE) in _WRITE_MODES  # octal, as open(2)
    except (KeyError, ValueError):
        return False
