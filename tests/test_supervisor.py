"""The supervisor: signals as plain flags, rescans on their own thread, loop threads that die.

The daemon runs in this process (on a thread, with its timers shortened); notify messages go
to a real datagram socket, as in test_notify.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from conftest import API_KEY, wait_for, write_video
from fakemavi import FakeMavi
from mavi_uploader.config.model import Config
from mavi_uploader.config.settings import load_config
from mavi_uploader.config.timers import Timers
from mavi_uploader.service import signals as signals_module
from mavi_uploader.service.daemon import Daemon
from mavi_uploader.service.supervisor import summary
from mavi_uploader.watch.rescans import Rescanner
from mavi_uploader.watch.roots import WatchRoot
from mavi_uploader.watch.settle import Settler
from mavi_uploader.watch.watcher import Watcher

FAST = Timers(report_every=0.2, watch_retry=0.5, stop_grace=10.0, guard_pause=0.1)


def make_config(tmp_path: Path, api_base: str) -> Config:
    config_file = tmp_path / "config.toml"
    watch = tmp_path / "watch"
    watch.mkdir(exist_ok=True)
    config_file.write_text(
        f'settle_seconds = 0.2\nrate_limit_per_second = 50.0\n[[watch]]\npath = "{watch}"\n'
    )
    env = {"MAVI_API_KEY": API_KEY, "MAVI_API_BASE": api_base,
           "MAVI_UPLOADER_STATE_DIR": str(tmp_path / "state")}  # fmt: skip
    return load_config(config_path=str(config_file), env=env)


class Running:
    """A Daemon.run() on a thread; `code` once it returned."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.codes: list[int] = []
        self.thread = threading.Thread(target=lambda: self.codes.append(daemon.run()))
        self.thread.daemon = True
        self.thread.start()

    def code(self, timeout: float) -> int | None:
        self.thread.join(timeout)
        return self.codes[0] if self.codes else None

    def stop(self) -> None:
        self.daemon.request_stop()
        self.thread.join(timeout=30)


@pytest.fixture
def notify(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], list[str]]]:
    """NOTIFY_SOCKET for daemons made in this test (pings every 0.5 s); returns a reader."""
    folder = tempfile.mkdtemp(prefix="notify-")
    path = os.path.join(folder, "s")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    seen: list[str] = []

    def read() -> list[str]:
        while True:
            try:
                seen.append(sock.recv(4096).decode())
            except BlockingIOError:
                return seen

    yield read
    sock.close()
    shutil.rmtree(folder)


@pytest.fixture
def held_walk(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Rescans block at their first folder (a dead NFS server) until `release` is set."""
    walking, release = threading.Event(), threading.Event()
    real_walk = WatchRoot.walk

    def walk(self: WatchRoot, *args: Any, **kwargs: Any) -> Iterator[str]:
        walking.set()
        release.wait()
        yield from real_walk(self, *args, **kwargs)

    monkeypatch.setattr(WatchRoot, "walk", walk)
    yield walking, release
    release.set()


# ---- rescans (issue 8, item 14) ---------------------------------------------------------------


def test_a_held_rescan_does_not_hold_back_ready_pings_or_uploads(
    tmp_path: Path,
    fake: FakeMavi,
    notify: Callable[[], list[str]],
    held_walk: tuple[threading.Event, threading.Event],
) -> None:
    walking, release = held_walk
    old = write_video(tmp_path / "watch" / "old.mp4", 3000)  # only a rescan can find it
    running = Running(Daemon(make_config(tmp_path, fake.api_base), timers=FAST))
    try:
        wait_for(walking.is_set, what="the start-up rescan under way")
        wait_for(lambda: any(m.startswith("READY=1") for m in notify()), what="READY=1")
        pings = len([m for m in notify() if m == "WATCHDOG=1"])
        wait_for(lambda: notify().count("WATCHDOG=1") >= pings + 3, what="pings while held")
        # The daemon is not just pinging: a new file is uploaded while the rescan hangs.
        new = write_video(tmp_path / "watch" / "new.mp4", 4000)
        wait_for(lambda: new.name in fake.completed_by_filename(), what="new.mp4 uploaded")
        release.set()
        wait_for(lambda: old.name in fake.completed_by_filename(), what="old.mp4 found")
    finally:
        running.stop()
    assert running.code(0) == 0


def test_a_rescan_that_makes_no_progress_withholds_the_ping_until_it_moves(
    tmp_path: Path,
    fake: FakeMavi,
    notify: Callable[[], list[str]],
    held_walk: tuple[threading.Event, threading.Event],
) -> None:
    walking, release = held_walk
    timers = Timers(report_every=0.2, rescan_stall=1.0, stop_grace=10.0)
    running = Running(Daemon(make_config(tmp_path, fake.api_base), timers=timers))

    def status_twice_without_a_ping() -> bool:
        tail = "|".join(m.split("=")[0] for m in notify()[-6:])
        return "STATUS|STATUS|STATUS" in tail  # reports go on; WATCHDOG=1 does not

    try:
        wait_for(walking.is_set, what="the start-up rescan under way")
        wait_for(status_twice_without_a_ping, what="pings withheld for a stalled rescan")
        seen = len(notify())
        release.set()
        wait_for(lambda: "WATCHDOG=1" in notify()[seen:], what="pings again once it moves")
    finally:
        running.stop()


class _StubWatcher:
    """Records rescans; each one waits for `release`."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls: list[list[str] | None] = []
        self.running = 0
        self.most_at_once = 0

    def rescan(self, roots: Sequence[WatchRoot] | None = None, on_progress: Any = None) -> int:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        self.calls.append(None if roots is None else sorted(r.root for r in roots))
        self.release.wait()
        self.running -= 1
        return 0


def _root(path: str) -> WatchRoot:
    return WatchRoot(path, recursive=True, ignore=(), extensions=frozenset({"mp4"}))


def test_rescans_run_one_at_a_time_and_requests_made_meanwhile_are_merged() -> None:
    stub, stop = _StubWatcher(), threading.Event()
    rescanner = Rescanner(cast(Watcher, stub), stop)
    thread = threading.Thread(target=rescanner.run, daemon=True)
    thread.start()
    try:
        rescanner.request("start-up")
        wait_for(lambda: stub.calls == [None], what="the first rescan running")
        assert rescanner.busy
        for path in ("/b", "/a", "/b"):
            rescanner.request("watch folder appeared", [_root(path)])
        stub.release.set()
        wait_for(lambda: not rescanner.busy, what="all requests carried out")
        assert stub.calls == [None, ["/a", "/b"]] and stub.most_at_once == 1
        stub.release.clear()
        rescanner.request("overflow", [_root("/a")])
        rescanner.request("periodic")  # a full rescan covers the partial one
        stub.release.set()
        wait_for(lambda: not rescanner.busy and len(stub.calls) == 3, what="merged")
        assert stub.calls[2] is None
    finally:
        stop.set()
        stub.release.set()
        rescanner.wake()
        thread.join(timeout=10)
    assert not thread.is_alive()


# ---- threads that die outside their guard (issue 8, item 6) -----------------------------------


class _Escaped(BaseException):
    """Not an Exception: passes the loop guard, as a bug in the guard itself would."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("once", [False, True], ids=["daemon", "once"])
def test_a_loop_thread_that_dies_makes_the_daemon_exit_1(
    tmp_path: Path, fake: FakeMavi, monkeypatch: pytest.MonkeyPatch, once: bool
) -> None:
    def tick(self: Settler) -> bool:
        raise _Escaped("killed outside the guard")

    monkeypatch.setattr(Settler, "tick", tick)
    write_video(tmp_path / "watch" / "a.mp4", 1000)  # `--once` has something to wait for
    running = Running(Daemon(make_config(tmp_path, fake.api_base), once=once, timers=FAST))
    try:
        assert running.code(20) == 1
    finally:
        running.stop()


# ---- signals (issue 8, item 11) ---------------------------------------------------------------


@pytest.fixture
def restore_signals() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.timeout(20)
def test_a_stop_signal_arriving_while_the_stop_events_lock_is_held_does_not_deadlock(
    tmp_path: Path, restore_signals: None
) -> None:
    daemon = Daemon(make_config(tmp_path, "http://127.0.0.1:9"))
    daemon.install_signal_handlers()
    try:
        # What the main thread holds for a moment inside stop.wait() or stop.set(): a
        # handler that called Event.set() here would wait for this very thread for ever.
        with cast(Any, daemon.stop)._cond:
            signal.raise_signal(signal.SIGTERM)
        assert daemon.signals.stop_requested and not daemon.stop.is_set()
        daemon.signals.nap(0)  # the supervisor's turn: it decides, outside the handler
    finally:
        daemon.signals.close()


def test_the_supervisors_nap_wakes_at_once_on_a_signal(
    tmp_path: Path, restore_signals: None
) -> None:
    flags = signals_module.SignalFlags()
    flags.install()
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM))
    try:
        timer.start()
        started = time.monotonic()
        flags.nap(30.0)
        took = time.monotonic() - started
    finally:
        timer.cancel()
        flags.close()
    assert flags.stop_requested and took < 5.0


def test_hup_is_a_flag_taken_once_and_a_second_stop_signal_exits_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exits: list[int] = []
    monkeypatch.setattr(os, "_exit", exits.append)
    flags = signals_module.SignalFlags()
    try:
        flags._on_hup(signal.SIGHUP, None)
        flags._on_hup(signal.SIGHUP, None)
        assert flags.take_hup() and not flags.take_hup()
        flags._on_stop(signal.SIGTERM, None)
        assert flags.stop_requested and exits == []
        flags._on_stop(signal.SIGINT, None)
        assert exits == [signals_module.COLD_STOP_EXIT]
    finally:
        flags.close()


def test_request_stop_from_another_thread_ends_the_daemon_promptly(
    tmp_path: Path, fake: FakeMavi
) -> None:
    running = Running(Daemon(make_config(tmp_path, fake.api_base), timers=FAST))
    wait_for((tmp_path / "state" / "daemon.lock").exists, what="daemon started")
    started = time.monotonic()
    running.daemon.request_stop()
    assert running.code(10) == 0 and time.monotonic() - started < 5


def test_status_line_tells_how_many_log_lines_were_lost() -> None:
    assert summary({"done": 2, "failed": 0}) == "2 done"
    assert summary({"done": 2}, None, 3) == "2 done; 3 log lines could not be written"
    assert summary({}, "401", 1) == "PAUSED (401); no files yet; 1 log lines could not be written"
