"""Logging setup: structlog, JSON lines off a terminal, console on one; secrets always redacted.

A log line that cannot be written never raises into the thread that logged it: the daemon's
loops log on every turn, and one failed write (stdout a pipe whose reader is gone) used to
kill them; nor may it block: a pipe whose reader stopped reading froze every logging thread
(and so the daemon, even SIGTERM). Lines go to stdout, else stderr, else they are dropped and
counted.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import os
import select
import stat
import sys
import threading
from collections.abc import Callable, MutableMapping
from typing import Any, Literal, Protocol, TextIO, cast

import structlog

from mavi_uploader.redaction import redact
from mavi_uploader.streams import silence_fd

LogFormat = Literal["auto", "json", "console"]


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_redact_value(v) for v in value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return redact(str(value))


def redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the last step before rendering, so exceptions are covered too."""
    return {key: _redact_value(value) for key, value in event_dict.items()}


class LogStream(Protocol):
    """Where log lines go: a text file, or the progress display's line printer."""

    def write(self, text: str, /) -> int: ...
    def flush(self) -> None: ...
    def isatty(self) -> bool: ...


# A stream that fails with one of these never works again: the reader of the pipe is gone,
# or the file was closed. Others (ENOSPC, EIO, EAGAIN) may pass: that stream is tried again.
_DEAD_ERRNOS = frozenset({errno.EPIPE, errno.EBADF, errno.ECONNRESET})


def _is_dead(exc: Exception) -> bool:
    return isinstance(exc, ValueError) or getattr(exc, "errno", None) in _DEAD_ERRNOS


# How long a line waits for a pipe (or socket, terminal) to take it before that stream counts
# as stalled: its reader is alive but not reading (`run | sleep 600`, a stuck log collector).
# A stalled stream is only re-checked without waiting, so while it stays full it costs nothing.
STALL_WAIT = 0.2
_PIPE_BUF = getattr(select, "PIPE_BUF", 512)  # a write this small into a pipe is atomic


def _pollable_fd(stream: LogStream) -> int | None:
    """The descriptor of a stream whose write can block (not a regular file), else None."""
    try:
        fd = int(getattr(stream, "fileno")())  # noqa: B009 - LogStream has no fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, OSError, ValueError):
        return None  # StringIO, the progress printer, a closed file
    return None if stat.S_ISREG(mode) else fd


def _writable(fd: int, wait: float) -> bool:
    return bool(select.select([], [fd], [], wait)[1])


def _encode(stream: LogStream, text: str) -> bytes:
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        return text.encode(encoding, getattr(stream, "errors", None) or "strict")
    except UnicodeError:
        return text.encode(encoding, "backslashreplace")


class _Target:
    """One stream lines may go to, and what FailSafeStream knows about it."""

    def __init__(self, stream: LogStream) -> None:
        self.stream = stream
        self.fd = _pollable_fd(stream)  # None: written through the text layer
        self.dead = False  # failed for ever (EPIPE, closed)
        self.stalled = False  # full last time: only re-checked with a zero timeout
        self.pending = b""  # the rest of a line a stall cut short, written first on resume

    def pour(self, data: bytes) -> int:
        """Write `data` in pieces of at most PIPE_BUF, each once the fd takes it without
        blocking; return how many bytes went (fewer when it stalls)."""
        assert self.fd is not None
        sent = 0
        while sent < len(data) and _writable(self.fd, STALL_WAIT):
            sent += os.write(self.fd, data[sent : sent + _PIPE_BUF])
        return sent


class FailSafeStream:
    """Writes whole lines to the first stream that takes them; never raises, never blocks.

    A stream that is not a regular file (a pipe) is written with os.write only when select()
    says it can take the bytes: one whose reader stopped reading is stalled, and its lines go
    to the next stream or are dropped, until it drains. `notice(n)` renders the line that
    reports `n` dropped lines; it is written before the next line once a stream works again.
    """

    def __init__(
        self,
        primary: LogStream,
        fallback: LogStream | None,
        notice: Callable[[int], str] = lambda n: f"{n} log lines could not be written\n",
    ) -> None:
        self._targets = [_Target(primary)]
        if fallback is not None and fallback is not primary:
            self._targets.append(_Target(fallback))
        self._notice = notice
        self._lock = threading.Lock()
        self.dropped = 0  # lines no stream took, in all
        self._unreported = 0  # of those, not yet reported by a notice line

    def isatty(self) -> bool:
        try:
            return self._targets[0].stream.isatty()
        except (OSError, ValueError):
            return False

    def flush(self) -> None:
        pass  # every write() flushes: its errors are handled there

    def write(self, text: str, /) -> int:
        with self._lock:
            for target in self._targets:
                if target.dead:
                    continue
                try:
                    if self._deliver(target, text):
                        return len(text)
                except (OSError, ValueError) as exc:
                    if _is_dead(exc):
                        target.dead = True
                        silence_fd(target.stream)
            lines = max(1, text.count("\n"))
            self.dropped += lines
            self._unreported += lines
            return len(text)

    def _deliver(self, target: _Target, text: str) -> bool:
        """Write the line (after any notice) to `target`; False if it did not take it."""
        stream = target.stream
        if target.fd is None:  # a regular file or no descriptor: it cannot stall
            if self._unreported:
                stream.write(self._notice(self._unreported))
                self._unreported = 0
            stream.write(text)
            stream.flush()
            return True
        if not _writable(target.fd, 0.0 if target.stalled else STALL_WAIT):
            target.stalled = True
            return False
        target.stalled = False
        stream.flush()  # whatever the text layer holds goes first
        if target.pending:
            target.pending = target.pending[target.pour(target.pending) :]
            if target.pending:
                target.stalled = True
                return False
        notice = self._notice(self._unreported) if self._unreported else ""
        data = _encode(stream, notice + text)
        sent = target.pour(data)
        if sent == 0:
            target.stalled = True
            return False
        if sent < len(data):  # cut short: the line counts as written, its rest goes first
            target.pending, target.stalled = data[sent:], True
        self._unreported = 0
        return True


_current: FailSafeStream | None = None


def dropped_lines() -> int:
    """Log lines lost so far because no stream would take them (for status reports)."""
    return _current.dropped if _current is not None else 0


def configure_logging(
    log_format: LogFormat = "auto",
    stream: LogStream | None = None,
    level: int = logging.INFO,
    fallback: LogStream | None = None,
) -> None:
    """Route structlog and stdlib logging (urllib3, watchdog) through one redacting pipeline.

    Lines go to `stream` (default stdout); when it fails, to `fallback` (default stderr).
    """
    global _current  # noqa: PLW0603 - one logging configuration per process, like structlog's
    primary = cast(TextIO, stream if stream is not None else sys.stdout)
    use_json = log_format == "json" or (log_format == "auto" and not _tty(primary))
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=_tty(primary))
    )

    def notice(count: int) -> str:
        event = {
            "event": "log lines could not be written and were dropped",
            "count": count,
            "level": "warning",
            "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(),
        }
        return str(renderer(None, "warning", event)) + "\n"

    out = FailSafeStream(primary, fallback if fallback is not None else sys.stderr, notice)
    _current = out
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # Exceptions are rendered to text before redaction: a traceback can quote a signed URL.
    tail: list[Any] = [structlog.processors.format_exc_info, redact_processor]
    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(), *tail, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # One write() per line (PrintLogger writes the newline separately).
        logger_factory=structlog.WriteLoggerFactory(file=cast(TextIO, out)),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(cast(TextIO, out))
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *tail,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)


def _tty(stream: LogStream) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError):
        return False


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
