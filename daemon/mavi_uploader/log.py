"""Logging setup: structlog, JSON lines off a terminal, console on one; secrets always redacted.

A log line that cannot be written never raises into the thread that logged it: the daemon's
loops log on every turn, and one failed write (stdout a pipe whose reader is gone) used to
kill them. Lines go to stdout, else stderr, else they are dropped and counted.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import os
import sys
import threading
from collections.abc import Callable, MutableMapping
from typing import Any, Literal, Protocol, TextIO, cast

import structlog

from mavi_uploader.redaction import redact

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


def _silence_fd(stream: LogStream) -> None:
    """Point a dead stdout/stderr descriptor at /dev/null: the interpreter flushes sys.stdout
    at exit (a failure there turns the exit code into 120) and children inherit the fd."""
    try:
        fd = getattr(stream, "fileno", lambda: -1)()
    except (OSError, ValueError):
        return
    if fd not in (1, 2):
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except OSError:
        pass


class FailSafeStream:
    """Writes whole lines to the first stream that takes them; never raises.

    `notice(n)` renders the line that reports `n` dropped lines; it is written before the
    next line once a stream works again.
    """

    def __init__(
        self,
        primary: LogStream,
        fallback: LogStream | None,
        notice: Callable[[int], str] = lambda n: f"{n} log lines could not be written\n",
    ) -> None:
        self._streams = [primary]
        if fallback is not None and fallback is not primary:
            self._streams.append(fallback)
        self._dead: set[int] = set()  # indexes into _streams
        self._notice = notice
        self._lock = threading.Lock()
        self.dropped = 0  # lines no stream took, in all
        self._unreported = 0  # of those, not yet reported by a notice line

    def isatty(self) -> bool:
        try:
            return self._streams[0].isatty()
        except (OSError, ValueError):
            return False

    def flush(self) -> None:
        pass  # every write() flushes: its errors are handled there

    def write(self, text: str, /) -> int:
        with self._lock:
            for index, stream in enumerate(self._streams):
                if index in self._dead:
                    continue
                try:
                    if self._unreported:
                        stream.write(self._notice(self._unreported))
                        self._unreported = 0
                    stream.write(text)
                    stream.flush()
                    return len(text)
                except (OSError, ValueError) as exc:
                    if _is_dead(exc):
                        self._dead.add(index)
                        _silence_fd(stream)
            lines = max(1, text.count("\n"))
            self.dropped += lines
            self._unreported += lines
            return len(text)


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
