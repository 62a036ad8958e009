"""Stop and reload signals as plain flags, and the nap that wakes the supervisor on them.

A Python signal handler runs in the main thread between two bytecodes, possibly while that
thread holds a lock (inside `Event.wait`, a logging call, the journal): a handler that takes a
lock, even through `Event.set()`, can deadlock the daemon for good. So the handlers only set
flags, and exit at once on a second stop signal (the journal is consistent at every commit).

The supervisor sleeps in `select()` on a socket pair registered with `signal.set_wakeup_fd`:
the C-level handler writes a byte to it, so the supervisor wakes at once and turns the flags
into events. Waiting in short slices would work too, but would add a slice of latency to
every stop and wake the process all day for nothing.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import threading
from types import FrameType

COLD_STOP_EXIT = 130


class SignalFlags:
    """Flags set by SIGTERM/SIGINT (stop) and SIGHUP (reload), and `nap()` to wait on them."""

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)  # set_wakeup_fd requires it; a full buffer is fine
        self.stop_requested = False
        self.hup_requested = False
        self.stop_signals = 0
        self._previous_wakeup_fd: int | None = None

    def install(self) -> None:
        """Take over SIGTERM, SIGINT and SIGHUP (main thread only, as Python requires)."""
        self._previous_wakeup_fd = signal.set_wakeup_fd(
            self._writer.fileno(), warn_on_full_buffer=False
        )
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)

    def close(self) -> None:
        """Hand the wakeup fd back (the handlers stay: a late signal only sets a flag)."""
        if self._previous_wakeup_fd is not None and threading.current_thread() is (
            threading.main_thread()
        ):
            signal.set_wakeup_fd(self._previous_wakeup_fd)
            self._previous_wakeup_fd = None
        self._reader.close()
        self._writer.close()

    # ---- the handlers: plain assignments, no locks, no logging -----------------------

    def _on_stop(self, _signum: int, _frame: FrameType | None) -> None:
        self.stop_signals += 1
        if self.stop_signals > 1:
            os._exit(COLD_STOP_EXIT)  # cold stop: the crash rule recovers whatever was in flight
        self.stop_requested = True

    def _on_hup(self, _signum: int, _frame: FrameType | None) -> None:
        self.hup_requested = True

    # ---- the supervisor's side -------------------------------------------------------

    def request_stop(self) -> None:
        """A stop asked for by code (tests, a fatal condition) rather than by a signal."""
        self.stop_requested = True
        self.wake()

    def wake(self) -> None:
        with contextlib.suppress(OSError):  # full: a wake-up is pending anyway; closed: over
            self._writer.send(b"\0")

    def take_hup(self) -> bool:
        """True once per SIGHUP received (several before a nap count as one reload)."""
        if self.hup_requested:
            self.hup_requested = False
            return True
        return False

    def nap(self, timeout: float) -> None:
        """Sleep up to `timeout` seconds; return at once when a signal arrives or on wake()."""
        if timeout > 0 and not self.stop_requested:
            with contextlib.suppress(OSError, ValueError):
                select.select([self._reader], [], [], timeout)
        with contextlib.suppress(OSError, ValueError):
            while self._reader.recv(4096):
                pass
