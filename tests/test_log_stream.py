"""A log line that cannot be written must never raise into the thread that logged it."""

from __future__ import annotations

import errno
import io
import json
import threading

from mavi_uploader import log as log_module
from mavi_uploader.log import FailSafeStream, configure_logging, get_logger


class Flaky(io.StringIO):
    """A text stream that fails with `error` while `failing` is set (a pipe, a full disk)."""

    def __init__(self, error: OSError | None = None) -> None:
        super().__init__()
        self.error = error
        self.attempts = 0

    def write(self, text: str, /) -> int:
        self.attempts += 1
        if self.error is not None:
            raise self.error
        return super().write(text)


def broken_pipe() -> OSError:
    return BrokenPipeError(errno.EPIPE, "Broken pipe")


def test_a_dead_primary_falls_back_and_is_never_tried_again() -> None:
    primary, fallback = Flaky(broken_pipe()), Flaky()
    stream = FailSafeStream(primary, fallback)
    assert stream.write("one\n") == 4
    stream.write("two\n")
    assert fallback.getvalue() == "one\ntwo\n"
    assert primary.attempts == 1  # EPIPE is for ever: the reader of the pipe is gone
    assert stream.dropped == 0


def test_lines_no_stream_takes_are_counted_then_reported_once_one_works() -> None:
    primary = Flaky(OSError(errno.ENOSPC, "No space left on device"))
    fallback = Flaky(broken_pipe())
    stream = FailSafeStream(primary, fallback, notice=lambda n: f"[{n} dropped]\n")
    stream.write("a\n")
    stream.write("b\n")
    assert stream.dropped == 2
    primary.error = None  # the disk has room again: ENOSPC was worth trying again
    stream.write("c\n")
    assert primary.getvalue() == "[2 dropped]\nc\n"
    stream.write("d\n")
    assert primary.getvalue().endswith("c\nd\n") and stream.dropped == 2


def test_a_closed_stream_is_dead_too() -> None:
    closed, fallback = io.StringIO(), io.StringIO()
    closed.close()
    stream = FailSafeStream(closed, fallback)
    stream.write("x\n")
    assert fallback.getvalue() == "x\n"


def test_loggers_in_threads_survive_a_dead_stdout_and_count_what_was_lost() -> None:
    primary, fallback = Flaky(broken_pipe()), Flaky()
    configure_logging("json", stream=primary, fallback=fallback)
    log = get_logger("test")
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            for n in range(50):
                log.info("turn", n=n)
                log.exception("boom")  # the guard's own logging must not raise either
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=loop) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    lines = [json.loads(line) for line in fallback.getvalue().splitlines()]
    assert len(lines) == 400 and lines[0]["event"] in ("turn", "boom")
    fallback.error = broken_pipe()  # now both are gone: lines are dropped and counted
    log.warning("lost")
    log.warning("lost too")
    assert log_module.dropped_lines() == 2


def test_the_notice_is_rendered_in_the_log_format() -> None:
    primary = Flaky(OSError(errno.EIO, "I/O error"))
    configure_logging("json", stream=primary, fallback=Flaky(broken_pipe()))
    log = get_logger("test")
    log.info("lost")
    primary.error = None
    log.info("back")
    first, second = (json.loads(line) for line in primary.getvalue().splitlines())
    assert first["event"] == "log lines could not be written and were dropped"
    assert first["count"] == 1 and first["level"] == "warning"
    assert second["event"] == "back"
