"""The fast path: a file its writer closed (IN_CLOSE_WRITE), that nobody else holds open for
writing and whose container is complete, is queued at once, without waiting out
settle_seconds. Anything less is left to the settle tick."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Clock, wait_for
from containers import fragmented_mp4, mkv, mp4, mxf
from fleet_hosts import two_hosts_on_a_share
from mavi_uploader.core.records import FileRecord, Observation, State
from mavi_uploader.core.writers import Writer, WriterProbe
from mavi_uploader.journal import JournalStore, open_journal
from mavi_uploader.watch.roots import WatchRoot
from mavi_uploader.watch.settle import Settler
from mavi_uploader.watch.watcher import Watcher
from test_settle import FakeProbe

SETTLE = 30.0  # long enough that only the fast path can queue anything in these tests


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def journal(tmp_path: Path, clock: Clock) -> Iterator[JournalStore]:
    store = open_journal(tmp_path / "state", clock=clock)
    yield store
    store.close()


def sighted(journal: JournalStore, path: Path, data: bytes) -> FileRecord:
    path.write_bytes(data)
    st = path.stat()
    (rec,) = journal.sight([Observation(str(path), str(path.parent), st.st_size, st.st_mtime_ns)])
    return rec


def row(journal: JournalStore, rec: FileRecord) -> FileRecord:
    now = journal.get(rec.id)
    assert now is not None
    return now


def settler(journal: JournalStore, clock: Clock, **kw: object) -> Settler:
    kw.setdefault("probe", FakeProbe())
    return Settler(journal, SETTLE, clock=clock, grace=60.0, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "data"),
    [("clip.mp4", mp4()), ("clip.mov", mp4(faststart=True)), ("clip.mxf", mxf()), ("a.mkv", mkv())],
)
def test_a_closed_complete_container_is_queued_at_once_saying_why(
    journal: JournalStore, clock: Clock, tmp_path: Path, name: str, data: bytes
) -> None:
    rec = sighted(journal, tmp_path / name, data)
    assert settler(journal, clock).settle_closed([rec.path]) == 1
    queued = row(journal, rec)
    assert queued.state is State.QUEUED and queued.last_error is None
    why = journal.history(rec.id)[-1].reason
    assert why.startswith("closed by its writer, not open for writing elsewhere; ")
    assert "complete" in why


def test_a_closed_file_that_grew_since_it_was_sighted_is_queued_with_its_final_size(
    journal: JournalStore, clock: Clock, tmp_path: Path
) -> None:
    whole = mp4()
    clip = tmp_path / "clip.mp4"
    rec = sighted(journal, clip, whole[:100])  # seen while being written
    clip.write_bytes(whole)  # the writer finished and closed it
    assert settler(journal, clock).settle_closed([str(clip)]) == 1
    queued = row(journal, rec)
    assert (queued.state, queued.size) == (State.QUEUED, len(whole))
    assert queued.mtime_ns == clip.stat().st_mtime_ns  # the worker compares against these


def test_a_closed_mp4_without_its_moov_is_left_to_the_settle_tick(
    journal: JournalStore, clock: Clock, tmp_path: Path
) -> None:
    whole = mp4()
    rec = sighted(journal, tmp_path / "clip.mp4", whole[: whole.index(b"moov") - 4])
    assert settler(journal, clock).settle_closed([rec.path]) == 0
    assert row(journal, rec).state is State.SETTLING


def test_a_closed_file_another_process_holds_open_for_writing_is_left_to_the_tick(
    journal: JournalStore, clock: Clock, tmp_path: Path
) -> None:
    rec = sighted(journal, tmp_path / "clip.mp4", mp4())
    probe = FakeProbe()
    probe.writers[rec.path] = Writer("held open for writing by pid 7 (cam)", 7)
    assert settler(journal, clock, probe=probe).settle_closed([rec.path]) == 0
    assert row(journal, rec).state is State.SETTLING
    assert probe.asked == [rec.path]


@pytest.mark.skipif(sys.platform != "linux", reason="the writer probe needs Linux")
def test_a_real_second_writer_holding_the_file_keeps_it_settling(
    journal: JournalStore, clock: Clock, tmp_path: Path
) -> None:
    rec = sighted(journal, tmp_path / "clip.mp4", mp4())
    fd = os.open(rec.path, os.O_WRONLY)  # another writer still has it open
    try:
        assert settler(journal, clock, probe=WriterProbe()).settle_closed([rec.path]) == 0
    finally:
        os.close(fd)
    assert row(journal, rec).state is State.SETTLING
    assert settler(journal, clock, probe=WriterProbe()).settle_closed([rec.path]) == 1


@pytest.mark.parametrize("name", ["clip.mts", "clip.mpg", "notes.mp4"])
def test_files_without_a_container_check_keep_the_settle_rule(
    journal: JournalStore, clock: Clock, tmp_path: Path, name: str
) -> None:
    # An MTS has no container whose end can be checked; a "notes.mp4" that is not an MP4
    # cannot be checked either: a close alone does not prove a recording ended.
    rec = sighted(journal, tmp_path / name, b"\x47" + os.urandom(4000))
    assert settler(journal, clock).settle_closed([rec.path]) == 0
    assert row(journal, rec).state is State.SETTLING


def test_a_fragmented_mp4_without_its_mfra_keeps_the_settle_rule(
    journal: JournalStore, clock: Clock, tmp_path: Path
) -> None:
    # Complete at every fragment: a live recorder appending a fragment at a time closes the
    # file after each, so a close proves nothing.
    rec = sighted(journal, tmp_path / "live.mp4", fragmented_mp4())
    assert settler(journal, clock).settle_closed([rec.path]) == 0
    assert row(journal, rec).state is State.SETTLING


def test_with_verify_container_off_a_close_queues_nothing(
    journal: JournalStore, clock: Clock, tmp_path: Path
) -> None:
    rec = sighted(journal, tmp_path / "clip.mp4", mp4())
    assert settler(journal, clock, verify=False).settle_closed([rec.path]) == 0
    assert row(journal, rec).state is State.SETTLING


def test_only_a_settling_row_is_moved_and_unknown_paths_are_ignored(
    journal: JournalStore, clock: Clock, tmp_path: Path
) -> None:
    rec = sighted(journal, tmp_path / "clip.mp4", mp4())
    fast = settler(journal, clock)
    assert fast.settle_closed([rec.path, str(tmp_path / "never-seen.mp4")]) == 1
    assert fast.settle_closed([rec.path]) == 0  # already queued: one event, not two
    assert [e.to_state for e in journal.history(rec.id)] == [State.SETTLING, State.QUEUED]


def test_a_share_file_keeps_the_settle_rule(tmp_path: Path, pg_url: str) -> None:
    # A writer on another host of the fleet closes nothing this host sees.
    clock = Clock()
    with two_hosts_on_a_share(tmp_path, pg_url, clock) as (nas, a, _):
        clip = nas / "clip.mp4"
        clip.write_bytes(mp4())
        st = clip.stat()
        (rec,) = a.sight([Observation(str(clip), str(nas), st.st_size, st.st_mtime_ns)])
        assert rec.share is not None
        assert Settler(a, SETTLE, clock=clock, probe=FakeProbe()).settle_closed([str(clip)]) == 0
        assert row(a, rec).state is State.SETTLING


class Watching:
    """A real watcher (inotify, or polling) on a folder, its fast path on a real journal."""

    def __init__(
        self, journal: JournalStore, clock: Clock, folder: Path, poll: bool, quiet: float = 0.3
    ) -> None:
        self.journal = journal
        self.fast = settler(journal, clock, probe=WriterProbe())
        self.handed: list[list[str]] = []
        self.root = WatchRoot(
            os.path.realpath(folder), True, (), frozenset({"mp4"}), poll=poll, poll_interval=0.1
        )
        self.watcher = Watcher([self.root], journal, on_closed=self._fast, closed_quiet=quiet)

    def _fast(self, paths: list[str]) -> None:
        self.handed.append(paths)
        self.fast.settle_closed(paths)

    def state_of(self, path: Path) -> State | None:
        """Pump once; the state of the latest row of `path` (None: not journaled yet)."""
        self.watcher.pump(timeout=0.05)
        rows = self.journal.by_path(str(path))
        return rows[-1].state if rows else None


@pytest.fixture
def watching(journal: JournalStore, clock: Clock, tmp_path: Path) -> Iterator[Watching]:
    folder = tmp_path / "watch"
    folder.mkdir()
    made = Watching(journal, clock, folder, poll=False)
    made.watcher.start()
    yield made
    made.watcher.stop()


linux_only = pytest.mark.skipif(sys.platform != "linux", reason="inotify is Linux's")


@linux_only
def test_a_file_closed_by_its_writer_is_queued_without_a_settle_tick(watching: Watching) -> None:
    clip = Path(watching.root.root) / "clip.mp4"
    with clip.open("wb") as f:
        f.write(mp4())
    wait_for(lambda: watching.state_of(clip) is State.QUEUED, timeout=30, what="queued")
    assert watching.handed[-1] == [str(clip)]


@linux_only
@pytest.mark.parametrize("how", ["renamed", "hard-linked", "folder moved in"])
def test_a_file_that_arrives_whole_is_queued_without_a_settle_tick(
    watching: Watching, tmp_path: Path, how: str
) -> None:
    # rsync, Syncthing and browsers write a temp name and rename; card dumps move folders.
    outside = tmp_path / "staging"
    outside.mkdir()
    (outside / "clip.mp4").write_bytes(mp4())
    inside = Path(watching.root.root)
    if how == "renamed":
        os.replace(outside / "clip.mp4", inside / "clip.mp4")
        clip = inside / "clip.mp4"
    elif how == "hard-linked":
        os.link(outside / "clip.mp4", inside / "clip.mp4")
        clip = inside / "clip.mp4"
    else:
        os.replace(outside, inside / "card")
        clip = inside / "card" / "clip.mp4"
    wait_for(lambda: watching.state_of(clip) is State.QUEUED, timeout=30, what="queued")


@linux_only
def test_a_file_patched_right_after_its_close_is_handed_over_once_after_the_quiet(
    journal: JournalStore, clock: Clock, tmp_path: Path
) -> None:
    folder = tmp_path / "watch"
    folder.mkdir()
    watching = Watching(journal, clock, folder, poll=False, quiet=2.0)
    watching.watcher.start()
    try:
        clip = Path(watching.root.root) / "export.mp4"
        whole = mp4()
        with clip.open("wb") as f:
            f.write(whole)
        wait_for(lambda: watching.state_of(clip) is State.SETTLING, what="the export sighted")
        with clip.open("r+b") as f:  # a tagger patching it in place: another close
            f.seek(whole.index(b"mdat") + 20)  # a few bytes of its media
            f.write(b"patched!")
        wait_for(lambda: watching.state_of(clip) is State.QUEUED, timeout=30, what="queued")
        assert watching.handed == [[str(clip)]]  # once, after the patch's close
        (rec,) = journal.by_path(str(clip))
        assert rec.mtime_ns == clip.stat().st_mtime_ns
    finally:
        watching.watcher.stop()


@linux_only
def test_a_polled_folder_never_takes_the_fast_path(
    journal: JournalStore, clock: Clock, tmp_path: Path
) -> None:
    folder = tmp_path / "share"
    folder.mkdir()
    polled = Watching(journal, clock, folder, poll=True)
    polled.watcher.start()
    try:
        clip = Path(polled.root.root) / "clip.mp4"
        clip.write_bytes(mp4())
        wait_for(lambda: polled.state_of(clip) is State.SETTLING, timeout=30, what="sighted")
        deadline = time.monotonic() + 1.0  # longer than the quiet a fast path would wait
        while time.monotonic() < deadline:
            assert polled.state_of(clip) is State.SETTLING
        assert polled.handed == []
    finally:
        polled.watcher.stop()
