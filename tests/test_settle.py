"""The settle tick on a real journal and real files, driven by a fake clock (no sleeps)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Clock, held_by, held_open, write_video
from mavi_uploader.config.timers import Timers
from mavi_uploader.core.records import FileRecord, Observation, State
from mavi_uploader.core.writers import Writer
from mavi_uploader.journal.sqlite.store import Journal
from mavi_uploader.watch.settle import Settler

SETTLE = 5.0


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def journal(tmp_path: Path, clock: Clock) -> Iterator[Journal]:
    j = Journal.open(tmp_path / "state", clock=clock)
    yield j
    j.close()


@pytest.fixture
def watch(tmp_path: Path) -> Path:
    folder = tmp_path / "watch"
    folder.mkdir()
    return folder


def sight(journal: Journal, path: Path) -> FileRecord:
    st = path.stat()
    (rec,) = journal.sight([Observation(str(path), str(path.parent), st.st_size, st.st_mtime_ns)])
    return rec


def current(journal: Journal, rec: FileRecord) -> FileRecord:
    now = journal.get(rec.id)
    assert now is not None
    return now


def set_mtime(path: Path, mtime_ns: int) -> None:
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_queued_only_after_size_and_mtime_held_still_for_settle_seconds(
    journal: Journal, clock: Clock, watch: Path
) -> None:
    rec = sight(journal, write_video(watch / "a.mp4", 4096))
    settler = Settler(journal, SETTLE, clock=clock)
    start = clock.now
    for offset in (0.0, 1.0, 4.0, SETTLE - 0.01):
        clock.now = start + offset
        assert settler.tick() == 0
        assert current(journal, rec).state is State.SETTLING
    clock.now = start + SETTLE
    assert settler.tick() == 1
    done = current(journal, rec)
    assert done.state is State.QUEUED
    assert (done.size, done.last_error, done.next_attempt_at) == (4096, None, None)
    last = journal.history(rec.id)[-1]
    assert (last.from_state, last.to_state) == (State.SETTLING, State.QUEUED)
    assert "unchanged for 5s" in last.reason
    assert settler.tick() == 0  # queued rows are not settled twice


def test_a_growing_file_restarts_the_quiet_period(
    journal: Journal, clock: Clock, watch: Path
) -> None:
    path = write_video(watch / "a.mp4", 1000)
    rec = sight(journal, path)
    settler = Settler(journal, SETTLE, clock=clock)
    start = clock.now
    for step, size in enumerate((2000, 3000, 4000), start=1):
        clock.now = start + 3.0 * step  # less than SETTLE between writes
        with path.open("ab") as f:
            f.write(b"\0" * (size - path.stat().st_size))
        assert settler.tick() == 0
        row = current(journal, rec)
        assert row.state is State.SETTLING
        assert (row.size, row.stable_since) == (size, clock.now)
    last_write = clock.now
    clock.now = last_write + SETTLE - 0.5
    assert settler.tick() == 0
    # Well past SETTLE since the sighting, but not since the last write.
    assert clock.now - start > SETTLE
    assert current(journal, rec).state is State.SETTLING
    clock.now = last_write + SETTLE
    assert settler.tick() == 1
    assert current(journal, rec).state is State.QUEUED
    assert current(journal, rec).size == 4000


def test_a_changed_mtime_alone_restarts_the_quiet_period(
    journal: Journal, clock: Clock, watch: Path
) -> None:
    path = write_video(watch / "a.mp4", 1000)
    set_mtime(path, 1_600_000_000_000_000_000)
    rec = sight(journal, path)
    settler = Settler(journal, SETTLE, clock=clock)
    start = clock.now
    clock.now = start + 4.0
    set_mtime(path, 1_600_000_001_000_000_000)  # rewritten in place, same size
    assert settler.tick() == 0
    assert current(journal, rec).mtime_ns == 1_600_000_001_000_000_000
    clock.now = start + SETTLE + 1.0
    assert settler.tick() == 0
    assert current(journal, rec).state is State.SETTLING
    clock.now = start + 4.0 + SETTLE
    assert settler.tick() == 1


def test_a_changed_size_alone_restarts_the_quiet_period(
    journal: Journal, clock: Clock, watch: Path
) -> None:
    path = write_video(watch / "a.mp4", 1000)
    set_mtime(path, 1_600_000_000_000_000_000)
    rec = sight(journal, path)
    settler = Settler(journal, SETTLE, clock=clock)
    start = clock.now
    clock.now = start + 4.0
    with path.open("ab") as f:
        f.write(b"more")
    set_mtime(path, 1_600_000_000_000_000_000)  # a tool that preserves timestamps
    assert settler.tick() == 0
    assert current(journal, rec).size == 1004
    clock.now = start + SETTLE + 1.0
    assert settler.tick() == 0
    clock.now = start + 4.0 + SETTLE
    assert settler.tick() == 1


def test_a_file_that_disappears_while_settling_is_vanished(
    journal: Journal, clock: Clock, watch: Path
) -> None:
    path = write_video(watch / "a.mp4", 100)
    rec = sight(journal, path)
    keep = sight(journal, write_video(watch / "b.mp4", 100))
    settler = Settler(journal, SETTLE, clock=clock)
    path.unlink()
    clock.now += 1.0
    assert settler.tick() == 0
    assert current(journal, rec).state is State.VANISHED
    assert current(journal, keep).state is State.SETTLING
    last = journal.history(rec.id)[-1]
    assert (last.from_state, last.to_state) == (State.SETTLING, State.VANISHED)
    assert "disappeared" in last.reason
    clock.now += SETTLE
    assert settler.tick() == 1  # the other file is unaffected
    assert current(journal, rec).state is State.VANISHED


class Readable:
    """An injectable check_readable whose answer the test flips."""

    def __init__(self) -> None:
        self.readable = False
        self.calls: list[str] = []

    def __call__(self, path: str) -> None:
        self.calls.append(path)
        if not self.readable:
            raise PermissionError(13, "Permission denied", path)


def test_an_unreadable_file_stays_settling_and_is_retried_later(
    journal: Journal, clock: Clock, watch: Path
) -> None:
    path = write_video(watch / "a.mp4", 100)
    rec = sight(journal, path)
    readable = Readable()
    settler = Settler(journal, SETTLE, clock=clock, check_readable=readable)
    clock.now += SETTLE
    deferred_at = clock.now
    assert settler.tick() == 0
    row = current(journal, rec)
    assert row.state is State.SETTLING
    assert row.last_error is not None and "cannot read the file" in row.last_error
    assert "Permission denied" in row.last_error
    assert row.next_attempt_at == deferred_at + Timers.unreadable_retry  # the default: 30 s
    assert readable.calls == [str(path)]

    readable.readable = True
    clock.now = deferred_at + Timers.unreadable_retry - 1.0
    assert settler.tick() == 0  # deferred: not even looked at yet
    assert readable.calls == [str(path)]
    assert current(journal, rec).state is State.SETTLING

    clock.now = deferred_at + Timers.unreadable_retry
    assert settler.tick() == 1
    row = current(journal, rec)
    assert row.state is State.QUEUED
    assert (row.last_error, row.next_attempt_at) == (None, None)


def test_a_file_that_cannot_be_stat_ed_is_deferred_not_vanished(
    journal: Journal, clock: Clock, watch: Path
) -> None:
    path = write_video(watch / "a.mp4", 100)
    rec = sight(journal, path)
    broken = {"on": True}

    def flaky_stat(p: str) -> os.stat_result:
        if broken["on"]:
            raise PermissionError(13, "Permission denied", p)
        return os.stat(p)

    settler = Settler(journal, SETTLE, clock=clock, stat=flaky_stat, unreadable_retry=7.0)
    clock.now += SETTLE
    assert settler.tick() == 0
    row = current(journal, rec)
    assert row.state is State.SETTLING
    assert row.last_error is not None and "cannot stat" in row.last_error
    assert row.next_attempt_at == clock.now + 7.0  # the setting (Timers.unreadable_retry)
    broken["on"] = False
    clock.now += 7.0 - 0.5
    assert settler.tick() == 0  # not yet
    clock.now += 0.5
    assert settler.tick() == 1
    assert current(journal, rec).state is State.QUEUED


def test_a_30_second_camera_write_is_never_queued_while_growing(
    journal: Journal, clock: Clock, watch: Path
) -> None:
    path = watch / "CLIP0001.MP4"
    path.write_bytes(b"")
    rec = sight(journal, path)
    settler = Settler(journal, SETTLE, clock=clock)
    start = clock.now
    chunk = b"\x42" * 64 * 1024
    last_write = start
    queued_at = None
    tick = 0.5
    for n in range(int(45 / tick) + 1):
        clock.now = start + n * tick
        elapsed = clock.now - start
        if elapsed <= 30.0 and elapsed % 2.0 == 0.0 and elapsed > 0:
            with path.open("ab") as f:
                f.write(chunk)
            last_write = clock.now
        if settler.tick():
            queued_at = clock.now
            break
        assert current(journal, rec).state is State.SETTLING, f"at +{elapsed}s"
    assert last_write == start + 30.0
    assert queued_at == last_write + SETTLE
    row = current(journal, rec)
    assert row.state is State.QUEUED
    assert row.size == 15 * len(chunk) == path.stat().st_size


# ---- files held open for writing -------------------------------------------------------------


@pytest.mark.skipif(sys.platform != "linux", reason="the writer probe needs Linux")
@pytest.mark.parametrize("lease", [True, False], ids=["lease", "proc-scan"])
def test_a_still_file_held_open_for_writing_is_queued_only_once_closed(
    journal: Journal, clock: Clock, watch: Path, lease: bool, request: pytest.FixtureRequest
) -> None:
    """A camera pausing longer than settle_seconds with its file open (the real probe)."""
    if lease:
        request.getfixturevalue("sigio_ignored")  # as in the daemon; else /proc answers
    path = write_video(watch / "recording.mp4", 3_000_000)
    rec = sight(journal, path)
    settler = Settler(journal, SETTLE, clock=clock)
    with held_open(path, "ab") as writer:
        clock.now += SETTLE + 3.0
        for _ in range(3):
            assert settler.tick() == 0
            row = current(journal, rec)
            assert row.state is State.SETTLING
            assert row.last_error == held_by(writer.pid)
            assert row.stable_since == rec.stable_since  # nothing changed: no new quiet period
            clock.now += 1.0
    assert settler.tick() == 1  # closed without writing more: still for long enough
    row = current(journal, rec)
    assert (row.state, row.last_error) == (State.QUEUED, None)
    assert "unchanged for 5s" in journal.history(rec.id)[-1].reason


class FakeProbe:
    """An injectable writer probe whose answers the test sets."""

    def __init__(self) -> None:
        self.writers: dict[str, Writer] = {}
        self.asked: list[str | int] = []
        self.batches = 0

    def __call__(self, file: str | int) -> Writer | None:
        self.asked.append(file)
        return self.writers.get(str(file))

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        self.batches += 1
        yield


def test_only_files_that_held_still_are_probed_and_a_wait_is_journaled_once(
    journal: Journal, clock: Clock, watch: Path
) -> None:
    paused = write_video(watch / "paused.mp4", 1000)
    growing = write_video(watch / "growing.mp4", 1000)
    held, other = sight(journal, paused), sight(journal, growing)
    probe = FakeProbe()
    probe.writers[str(paused)] = Writer("held open for writing by pid 7 (obs)", 7)
    settler = Settler(journal, SETTLE, clock=clock, probe=probe)
    assert settler.tick() == 0
    assert probe.asked == []  # nothing held still yet: no probe at all
    clock.now += SETTLE
    with growing.open("ab") as f:
        f.write(b"more")
    assert settler.tick() == 0
    assert (probe.asked, probe.batches) == ([str(paused)], 2)  # one batch per tick
    first = current(journal, held)
    assert (first.state, first.last_error) == (
        State.SETTLING,
        "held open for writing by pid 7 (obs)",
    )
    clock.now += 1.0
    assert settler.tick() == 0
    assert probe.asked == [str(paused)] * 2  # asked again on every tick...
    assert current(journal, held) == first  # ...but the same answer is not written again
    del probe.writers[str(paused)]
    clock.now += SETTLE
    assert settler.tick() == 2
    assert current(journal, held).last_error is None
    assert current(journal, other).state is State.QUEUED
