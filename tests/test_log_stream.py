"""A log line that cannot be written must never raise into the thread that logged it, and a
daemon whose log reader went away keeps working."""

from __future__ import annotations

import errno
import io
import json
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import pytest

from conftest import DaemonProcess, exit_code_within, wait_for, write_video
from fakemavi import FakeMavi
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


# ---- a pipe whose reader is alive but never reads (`run | sleep 600`) -------------------------


@pytest.fixture
def unread_pipe() -> Iterator[tuple[int, TextIO]]:
    """A real pipe: its read end stays open and is never read unless a test drains it."""
    read_end, write_end = os.pipe()
    writer = os.fdopen(write_end, "w", encoding="utf-8")
    try:
        yield read_end, writer
    finally:
        writer.close()
        os.close(read_end)


def drain(read_end: int) -> int:
    got = 0
    while select.select([read_end], [], [], 0)[0]:
        got += len(os.read(read_end, 65536))
    return got


def write_timed(stream: FailSafeStream, line: str) -> float:
    start = time.monotonic()
    assert stream.write(line) == len(line)
    return time.monotonic() - start


LINE = "x" * 99 + "\n"
PIPE_FILLERS = 2000  # 200 KB: more than a pipe holds


def test_a_pipe_nobody_reads_stalls_to_the_fallback_and_resumes_once_drained(
    unread_pipe: tuple[int, TextIO],
) -> None:
    read_end, writer = unread_pipe
    fallback = io.StringIO()
    stream = FailSafeStream(writer, fallback)
    slowest = max(write_timed(stream, LINE) for _ in range(PIPE_FILLERS))
    assert slowest < 1.0  # a full pipe costs one short wait, never a blocked write
    went_to_pipe = drain(read_end)
    assert 0 < went_to_pipe < PIPE_FILLERS * len(LINE) and went_to_pipe % len(LINE) == 0
    assert fallback.getvalue() == LINE * (PIPE_FILLERS - went_to_pipe // len(LINE))
    assert stream.dropped == 0
    stream.write("back\n")  # drained: the pipe takes lines again
    assert os.read(read_end, 65536) == b"back\n"
    assert fallback.getvalue().count("\n") == PIPE_FILLERS - went_to_pipe // len(LINE)


def test_a_stalled_pipe_without_a_fallback_drops_counts_and_costs_nothing(
    unread_pipe: tuple[int, TextIO],
) -> None:
    read_end, writer = unread_pipe
    stream = FailSafeStream(writer, None, notice=lambda n: f"[{n} dropped]\n")
    for _ in range(PIPE_FILLERS):
        stream.write(LINE)
    assert stream.dropped > 0
    dropped = stream.dropped
    start = time.monotonic()
    for _ in range(1000):
        stream.write(LINE)
    assert time.monotonic() - start < 1.0  # stalled: re-checked with a zero timeout only
    assert stream.dropped == dropped + 1000
    drain(read_end)
    stream.write("back\n")
    assert os.read(read_end, 65536) == f"[{dropped + 1000} dropped]\nback\n".encode()


def test_a_long_line_cut_short_by_a_stall_is_finished_first_on_resume(
    unread_pipe: tuple[int, TextIO],
) -> None:
    read_end, writer = unread_pipe
    fallback = io.StringIO()
    stream = FailSafeStream(writer, fallback)
    long_line = "".join(f"{n:07d}," for n in range(40_000)) + "\n"  # 320 KB: a pipe fills
    stream.write(long_line)
    stream.write("next\n")
    assert fallback.getvalue() == "next\n"  # the pipe is stalled mid-line
    got = b""
    while not got.endswith(b"after\n"):
        got += os.read(read_end, 65536)
        stream.write("after\n")  # each turn pours a little more of the rest
    assert got.decode().split("\n")[0] + "\n" == long_line  # whole, never interleaved


# ---- the daemon with its stdout reader gone (`run | tee log`, tee killed) ---------------------


def _start_into_pipe(daemon: DaemonProcess, *args: str, stderr: Any) -> int:
    """Start the daemon with stdout (and maybe stderr) into a pipe; return the read end."""
    read_end, write_end = os.pipe()
    daemon.proc = subprocess.Popen(
        daemon.command("run", "--log-format", "json", *args),
        env=daemon.env, stdout=write_end,
        stderr=write_end if stderr is subprocess.STDOUT else stderr,
    )  # fmt: skip
    os.close(write_end)
    return read_end


def _read_until_ready(read_end: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    seen = b""
    while b'"event": "ready"' not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([read_end], [], [], left)[0]:
            pytest.fail(f"no ready line in {timeout}s: {seen[-2000:]!r}")
        chunk = os.read(read_end, 65536)
        if not chunk:
            pytest.fail(f"the daemon closed its stdout: {seen[-2000:]!r}")
        seen += chunk


def test_a_daemon_whose_stdout_reader_died_keeps_uploading_and_logs_to_stderr(
    fake: FakeMavi, daemon_factory: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    daemon = daemon_factory()
    with open(tmp_path / "stderr.log", "wb") as stderr:
        read_end = _start_into_pipe(daemon, stderr=stderr)
    _read_until_ready(read_end)
    os.close(read_end)  # tee was killed
    videos = [write_video(daemon.watch / f"clip{n}.mp4", 20_000 + n) for n in range(3)]
    names = sorted(v.name for v in videos)
    wait_for(lambda: sorted(u.filename for u in fake.completed) == names, what="all uploaded")
    wait_for(lambda: daemon.status()["counts"]["done"] == 3, what="all done")
    fallback = (tmp_path / "stderr.log").read_text()
    assert '"event": "transition"' in fallback and "clip2.mp4" in fallback
    assert daemon.status()["daemon"]["running"] is True
    assert daemon.kill(signal.SIGTERM) == 0


def test_run_once_with_every_log_stream_gone_still_uploads_and_ends(
    fake: FakeMavi, daemon_factory: Callable[..., DaemonProcess]
) -> None:
    daemon = daemon_factory(settle_seconds=2.0)  # the uploads come after the pipe is gone
    videos = [write_video(daemon.watch / f"clip{n}.mp4", 20_000 + n) for n in range(3)]
    read_end = _start_into_pipe(daemon, "--once", stderr=subprocess.STDOUT)
    _read_until_ready(read_end)
    os.close(read_end)  # `run --once 2>&1 | tee log`, tee killed: nowhere left to log
    assert exit_code_within(daemon, 60) == 0
    assert sorted(u.filename for u in fake.completed) == sorted(v.name for v in videos)
    assert daemon.status()["counts"]["done"] == 3


def test_a_daemon_whose_stdout_and_stderr_nobody_reads_uploads_everything_and_stops(
    fake: FakeMavi, daemon_factory: Callable[..., DaemonProcess]
) -> None:
    """`run | sleep 600` (and stderr too): ~64 KiB of log filled the pipe, and every thread
    that logged then blocked; 44 of 60 files went up and SIGTERM could not stop it."""
    daemon = daemon_factory()
    daemon.proc = subprocess.Popen(
        daemon.command("run", "--log-format", "json"),
        env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_for(lambda: daemon.status()["daemon"]["running"] is True, what="daemon running")
        videos = [write_video(daemon.watch / f"clip{n:02d}.mp4", 5_000 + n) for n in range(60)]
        names = sorted(v.name for v in videos)
        wait_for(
            lambda: sorted(u.filename for u in fake.completed) == names,
            timeout=90,
            what="all 60 uploaded",
        )
        wait_for(lambda: daemon.status()["counts"]["done"] == 60, timeout=60, what="all done")
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=10) == 0
    finally:
        daemon.close()
        for pipe in (daemon.proc.stdout, daemon.proc.stderr):
            assert pipe is not None
            pipe.close()
