"""The watcher when the system misbehaves: folders removed and re-created, inotify limits,
kernel event-queue overflows (a real one)."""

from __future__ import annotations

import errno
import io
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from watchdog.observers.inotify import InotifyObserver
from watchdog.observers.polling import PollingObserver

from conftest import DaemonProcess, logged, wait_for, write_video
from fakemavi import FakeMavi
from mavi_uploader.config.model import DEFAULT_IGNORE
from mavi_uploader.config.settings import DEFAULT_EXTENSIONS
from mavi_uploader.journal.sqlite.store import Journal
from mavi_uploader.log import configure_logging
from mavi_uploader.watch import watcher as watcher_module
from mavi_uploader.watch.roots import WatchRoot
from mavi_uploader.watch.watcher import Watcher


def make_root(path: Path, poll_interval: float = 10.0) -> WatchRoot:
    return WatchRoot(
        root=str(path), recursive=True, ignore=DEFAULT_IGNORE,
        extensions=frozenset(DEFAULT_EXTENSIONS), poll_interval=poll_interval,
    )  # fmt: skip


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal.open(tmp_path / "state")
    yield j
    j.close()


def journaled(watcher: Watcher, journal: Journal, path: Path) -> bool:
    watcher.pump(0.1)
    return bool(journal.by_path(str(path)))


def test_a_watch_folder_removed_and_recreated_is_watched_again(
    tmp_path: Path, journal: Journal
) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    watcher = Watcher([make_root(folder)], journal)
    watcher.start()
    try:
        shutil.rmtree(folder)
        assert watcher.ensure_watching() == []
        folder.mkdir()
        (restarted,) = watcher.ensure_watching()
        assert restarted.root == str(folder)
        clip = write_video(folder / "after.mp4", 1000)
        wait_for(lambda: journaled(watcher, journal, clip), what="file in re-created folder")
    finally:
        watcher.stop()


def test_a_folder_replaced_between_checks_is_watched_again(
    tmp_path: Path, journal: Journal
) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    watcher = Watcher([make_root(folder)], journal)
    watcher.start()
    try:
        os.rename(folder, tmp_path / "old")  # the old inode lives on elsewhere
        folder.mkdir()
        assert [r.root for r in watcher.ensure_watching()] == [str(folder)]
        clip = write_video(folder / "new.mp4", 1000)
        wait_for(lambda: journaled(watcher, journal, clip), what="file in replacement folder")
    finally:
        watcher.stop()


class _ExhaustedInotify(InotifyObserver):
    """Stands in for a machine whose inotify watches are used up (as root we cannot lower
    the per-user limit for one test): scheduling fails the way watchdog reports it."""

    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")


def test_inotify_limit_falls_back_to_polling_with_the_sysctl_to_raise(
    tmp_path: Path, journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    configure_logging("json", stream=out)
    monkeypatch.setattr(watcher_module, "Observer", _ExhaustedInotify)
    folder = tmp_path / "share"
    folder.mkdir()
    watcher = Watcher([make_root(folder, poll_interval=0.2)], journal)
    watcher.start()
    try:
        ((observer, _),) = watcher._observers.values()
        assert isinstance(observer, PollingObserver)
        assert "fs.inotify.max_user_watches" in out.getvalue()
        clip = write_video(folder / "polled.mp4", 1000)
        wait_for(lambda: journaled(watcher, journal, clip), what="file seen by polling")
    finally:
        watcher.stop()


def test_a_real_kernel_queue_overflow_is_noticed_and_rescanned(
    fake: FakeMavi, daemon_factory: Callable[..., DaemonProcess]
) -> None:
    """A real IN_Q_OVERFLOW, not a log line written by the test: the daemon is stopped
    (SIGSTOP) so its reader cannot drain the kernel queue, which then overflows. Fails with any
    watchdog that stops reporting it (4.0-7.0 dropped it unseen)."""
    daemon = daemon_factory(rescan_interval_seconds=0)  # no periodic rescan to cover for it
    noise = [daemon.watch / ".noise-a", daemon.watch / ".noise-b"]  # hidden: never candidates
    for path in noise:
        path.write_bytes(b"")
    daemon.start()
    daemon.wait_ready()
    wait_for(lambda: logged(daemon, event="rescan done"), what="the start-up rescan done")
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    assert daemon.proc is not None
    os.kill(daemon.proc.pid, signal.SIGSTOP)
    try:
        for n in range(limit + 1000):  # IN_ATTRIB on alternate files: the kernel merges none
            os.utime(noise[n % 2], ns=(n, n))
        late = write_video(daemon.watch / "late.mp4", 5000)  # its events are dropped
    finally:
        os.kill(daemon.proc.pid, signal.SIGCONT)
    wait_for(lambda: logged(daemon, event="kernel dropped file events; rescanning"), what="alarm")
    wait_for(lambda: late.name in fake.completed_by_filename(), what="late.mp4 found by a rescan")
    assert logged(daemon, event="rescan done", reasons=["kernel event queue overflow"])


def test_an_observer_whose_emitter_stopped_is_replaced(tmp_path: Path, journal: Journal) -> None:
    # What watchdog does when the watched folder is deleted: the emitter stops, the observer
    # thread lives on. A folder re-created with the same inode must still be watched again.
    watcher = Watcher([make_root(tmp_path)], journal)
    watcher.start()
    try:
        ((observer, _),) = watcher._observers.values()
        for emitter in list(observer.emitters):
            emitter.stop()
            emitter.join(timeout=5)
        assert observer.is_alive()
        assert [r.root for r in watcher.ensure_watching()] == [str(tmp_path)]
        clip = write_video(tmp_path / "after.mp4", 1000)
        wait_for(lambda: journaled(watcher, journal, clip), what="file seen by the new observer")
    finally:
        watcher.stop()
