"""Run the on_done command once: no shell, its own process group, a timeout, output kept.

The command runs in a new session (its own process group), so a timeout kills it and every
process it started; its stdout and stderr (one pipe) are read as they come, keeping the first
and the last OUTPUT_LIMIT bytes, so a chatty hook costs no memory. A process that outlives the
command while holding the pipe (a daemon it started and detached) is not waited for.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence

from mavi_uploader.core.handoffs import OUTPUT_LIMIT, Attempt, shown_output

_CHUNK = 65536
_DRAIN_AFTER_EXIT = 1.0  # seconds to read what the command left in the pipe after it exited


class Interrupted(Exception):
    """The daemon is stopping: the command was killed; the hand-off is still owed."""


def run_hook(
    argv: Sequence[str],
    env: Mapping[str, str],
    timeout: float,
    stop: threading.Event | None = None,
) -> Attempt:
    """Run `argv` with exactly `env`; exit 0 is ok. Interrupted when `stop` is set meanwhile."""
    try:
        proc = subprocess.Popen(
            list(argv), env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
        )  # fmt: skip
    except OSError as exc:
        return Attempt(False, f"could not start {argv[0]}: {exc.strerror or exc}")
    assert proc.stdout is not None
    output = _Output()
    deadline = time.monotonic() + timeout
    timed_out = interrupted = False
    with proc, selectors.DefaultSelector() as sel:
        fd = proc.stdout.fileno()
        sel.register(fd, selectors.EVENT_READ)
        os.set_blocking(fd, False)
        while proc.poll() is None or not output.closed:
            now = time.monotonic()
            if proc.returncode is not None and now > output.exited_at + _DRAIN_AFTER_EXIT:
                break  # a detached child holds the pipe: what we have is enough
            if proc.returncode is None and stop is not None and stop.is_set():
                interrupted = True
                _kill_group(proc)
            elif proc.returncode is None and now >= deadline:
                timed_out = True
                _kill_group(proc)
            for _key, _ in sel.select(timeout=0.2):
                output.read(fd, sel)
            if proc.returncode is not None and output.exited_at == 0:
                output.exited_at = time.monotonic()
        code = proc.wait()
    if interrupted:
        raise Interrupted
    shown = output.text()
    if timed_out:
        return Attempt(False, f"timed out after {timeout:g}s; killed", shown)
    if code < 0:
        return Attempt(False, f"killed by signal {-code}", shown)
    return Attempt(code == 0, f"exit {code}", shown)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


class _Output:
    """The first and last OUTPUT_LIMIT bytes of a stream, and its length."""

    def __init__(self) -> None:
        self.head = b""
        self.tail = b""
        self.total = 0
        self.closed = False
        self.exited_at = 0.0

    def read(self, fd: int, sel: selectors.BaseSelector) -> None:
        try:
            chunk = os.read(fd, _CHUNK)
        except BlockingIOError:
            return
        if not chunk:
            self.closed = True
            sel.unregister(fd)
            return
        self.total += len(chunk)
        if len(self.head) < OUTPUT_LIMIT:
            self.head += chunk[: OUTPUT_LIMIT - len(self.head)]
        self.tail = (self.tail + chunk)[-OUTPUT_LIMIT:]

    def text(self) -> str:
        return shown_output(self.head, self.tail, self.total)
