"""The watcher: what a watch root observes and walks, rescans, and live watchdog events."""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from watchdog.events import (
    DirCreatedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileDeletedEvent,
    FileMovedEvent,
)

from conftest import wait_for, write_video
from journal_paths import drive
from mavi_uploader.config.model import DEFAULT_IGNORE
from mavi_uploader.config.settings import DEFAULT_EXTENSIONS
from mavi_uploader.core.records import Observation, State
from mavi_uploader.journal.sqlite.store import Journal
from mavi_uploader.watch import watcher as watcher_module
from mavi_uploader.watch.roots import WatchRoot
from mavi_uploader.watch.watcher import Watcher

LIVE_TIMEOUT = 10.0


def make_root(path: Path, *, recursive: bool = True) -> WatchRoot:
    return WatchRoot(
        root=os.path.normpath(str(path)),
        recursive=recursive,
        ignore=DEFAULT_IGNORE,
        extensions=frozenset(DEFAULT_EXTENSIONS),
    )


@pytest.fixture
def watch(tmp_path: Path) -> Path:
    folder = tmp_path / "watch"
    folder.mkdir()
    return folder


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal.open(tmp_path / "state")
    yield j
    j.close()


def paths(journal: Journal) -> set[str]:
    return {r.path for r in journal.files()}


def states(journal: Journal, path: Path) -> list[State]:
    return [r.state for r in journal.by_path(str(path))]


def mark_done(journal: Journal, path: Path) -> None:
    (rec,) = [r for r in journal.by_path(str(path)) if r.state is State.SETTLING]
    drive(journal, rec.id, State.DONE, "confirmed", asset_id="re_1")


# ---- WatchRoot.observe ----------------------------------------------------------------


def test_observe_a_regular_candidate_file(watch: Path) -> None:
    path = write_video(watch / "a.mp4", 1234)
    obs = make_root(watch).observe(str(path))
    st = path.stat()
    assert obs is not None
    assert (obs.path, obs.watch_root, obs.size, obs.mtime_ns) == (
        str(path),
        str(watch),
        1234,
        st.st_mtime_ns,
    )


def test_observe_refuses_non_candidates_even_when_they_are_regular_files(watch: Path) -> None:
    root = make_root(watch)
    for name in ("a.mp4.part", ".a.mp4", "._a.mp4", "notes.txt", ".hidden/a.mp4"):
        path = write_video(watch / name, 10)
        assert root.observe(str(path)) is None, name
    assert root.observe(str(watch / "missing.mp4")) is None


def test_observe_follows_a_symlink_that_stays_inside_the_root(watch: Path) -> None:
    target = write_video(watch / "shoot" / "real.mp4", 777)
    link = watch / "link.mp4"
    link.symlink_to(target)
    relative = watch / "rel.mp4"
    relative.symlink_to(Path("shoot") / "real.mp4")
    root = make_root(watch)
    for path in (link, relative):
        obs = root.observe(str(path))
        assert obs is not None
        assert (obs.path, obs.size, obs.mtime_ns) == (str(path), 777, target.stat().st_mtime_ns)


def test_observe_refuses_a_symlink_pointing_outside_the_root(tmp_path: Path, watch: Path) -> None:
    outside = write_video(tmp_path / "elsewhere" / "secret.mp4", 10)
    # A sibling whose name starts with the root's name is outside too.
    sibling = write_video(tmp_path / "watch2" / "secret.mp4", 10)
    (watch / "out.mp4").symlink_to(outside)
    (watch / "sib.mp4").symlink_to(sibling)
    (watch / "up.mp4").symlink_to(Path("..") / "watch2" / "secret.mp4")
    root = make_root(watch)
    for name in ("out.mp4", "sib.mp4", "up.mp4"):
        assert root.observe(str(watch / name)) is None, name


def test_observe_through_a_symlinked_root(tmp_path: Path) -> None:
    real = tmp_path / "real"
    target = write_video(real / "a.mp4", 50)
    (tmp_path / "alias").symlink_to(real, target_is_directory=True)
    (real / "link.mp4").symlink_to(target)  # absolute target under the real root
    root = make_root(tmp_path / "alias")
    for name in ("a.mp4", "link.mp4"):
        obs = root.observe(str(tmp_path / "alias" / name))
        assert obs is not None and obs.size == 50, name


def test_observe_refuses_directories_fifos_and_dangling_links(watch: Path) -> None:
    (watch / "folder.mp4").mkdir()
    os.mkfifo(watch / "pipe.mp4")
    (watch / "dangling.mp4").symlink_to(watch / "nothing.mp4")
    (watch / "to-pipe.mp4").symlink_to(watch / "pipe.mp4")
    (watch / "to-folder.mp4").symlink_to(watch / "folder.mp4")
    root = make_root(watch)
    for name in ("folder.mp4", "pipe.mp4", "dangling.mp4", "to-pipe.mp4", "to-folder.mp4"):
        assert root.observe(str(watch / name)) is None, name


# ---- WatchRoot.walk -------------------------------------------------------------------


def walked(root: WatchRoot, top: str | None = None, cap: int = 10_000) -> list[str]:
    # A cap turns a walk that loops forever into a failure instead of a hang.
    found = list(itertools.islice(root.walk(top), cap))
    assert len(found) < cap, "walk did not terminate"
    return found


def test_walk_skips_hidden_and_ignored_folders(watch: Path) -> None:
    keep = [
        write_video(watch / "a.mp4", 1),
        write_video(watch / "shoot" / "b.mov", 1),
        write_video(watch / "shoot" / "day 2" / "c.mkv", 1),
    ]
    write_video(watch / ".hidden" / "d.mp4", 1)
    write_video(watch / "shoot" / ".cache" / "e.mp4", 1)
    write_video(watch / "._rsrc" / "f.mp4", 1)
    write_video(watch / "dl.part" / "g.mp4", 1)
    found = walked(make_root(watch))
    assert {str(p) for p in keep} <= set(found)
    for path in found:
        parts = Path(path).relative_to(watch).parts
        assert not any(p.startswith(".") or p.endswith(".part") for p in parts[:-1]), path
    assert len(found) == len(set(found))


def test_walk_of_a_non_recursive_root_stays_at_the_top(watch: Path) -> None:
    top = write_video(watch / "a.mp4", 1)
    write_video(watch / "shoot" / "b.mp4", 1)
    assert walked(make_root(watch, recursive=False)) == [str(top)]


def test_walk_does_not_follow_symlinked_folders_and_ends_on_loops(
    tmp_path: Path, watch: Path
) -> None:
    write_video(watch / "a.mp4", 1)
    write_video(watch / "shoot" / "b.mp4", 1)
    write_video(tmp_path / "elsewhere" / "x.mp4", 1)
    (watch / "loop").symlink_to(watch, target_is_directory=True)
    (watch / "shoot" / "again").symlink_to(watch / "shoot", target_is_directory=True)
    (watch / "shoot" / "up").symlink_to(Path(".."), target_is_directory=True)
    (watch / "out").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    found = walked(make_root(watch))
    assert str(watch / "a.mp4") in found
    assert str(watch / "shoot" / "b.mp4") in found
    links = ("loop", "again", "up", "out")
    for path in found:
        # A link itself may be listed (observe refuses it); nothing is listed *through* one.
        assert not any(p in links for p in Path(path).relative_to(watch).parts[:-1]), path
    assert len(found) == len(set(found))


def test_walk_from_a_subfolder_applies_the_roots_rules(watch: Path) -> None:
    inside = write_video(watch / "shoot" / "day1" / "a.mp4", 1)
    write_video(watch / "shoot" / ".hidden" / "b.mp4", 1)
    assert walked(make_root(watch), str(watch / "shoot")) == [str(inside)]


# ---- Watcher.rescan -------------------------------------------------------------------


def test_rescan_journals_candidates_once(watch: Path, journal: Journal) -> None:
    wanted = {
        str(write_video(watch / "a.mp4", 10)),
        str(write_video(watch / "shoot" / "b.MOV", 20)),
    }
    write_video(watch / "c.mp4.part", 10)
    write_video(watch / ".d.mp4", 10)
    write_video(watch / ".hidden" / "e.mp4", 10)
    write_video(watch / "notes.txt", 10)
    watcher = Watcher([make_root(watch)], journal)
    assert watcher.rescan() == 2
    assert paths(journal) == wanted
    assert {r.state for r in journal.files()} == {State.SETTLING}
    assert (journal.by_path(str(watch / "shoot" / "b.MOV"))[0].size) == 20
    assert journal.by_path(str(watch / "a.mp4"))[0].watch_root == str(watch)
    assert watcher.rescan() == 0  # still settling: no second row
    assert len(journal.files()) == 2


def test_rescan_skips_files_already_done_with_the_same_size_and_mtime(
    watch: Path, journal: Journal
) -> None:
    path = write_video(watch / "a.mp4", 10)
    other = write_video(watch / "b.mp4", 10)
    watcher = Watcher([make_root(watch)], journal)
    assert watcher.rescan() == 2
    mark_done(journal, path)
    assert watcher.rescan() == 0
    assert states(journal, path) == [State.DONE]

    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert watcher.rescan() == 1
    assert states(journal, path) == [State.DONE, State.SETTLING]
    assert states(journal, other) == [State.SETTLING]


def test_rescan_sees_a_done_file_again_when_its_size_changes(watch: Path, journal: Journal) -> None:
    path = write_video(watch / "a.mp4", 10)
    watcher = Watcher([make_root(watch)], journal)
    watcher.rescan()
    mark_done(journal, path)
    st = path.stat()
    with path.open("ab") as f:
        f.write(b"more")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert watcher.rescan() == 1
    assert states(journal, path) == [State.DONE, State.SETTLING]


def test_rescan_brings_back_a_vanished_file(watch: Path, journal: Journal) -> None:
    path = write_video(watch / "a.mp4", 10)
    watcher = Watcher([make_root(watch)], journal)
    watcher.rescan()
    (rec,) = journal.by_path(str(path))
    journal.transition(rec.id, State.VANISHED, "gone", expect=State.SETTLING)
    assert watcher.rescan() == 1
    assert states(journal, path) == [State.VANISHED, State.SETTLING]


def test_rescan_of_a_missing_root_is_harmless(tmp_path: Path, journal: Journal) -> None:
    watcher = Watcher([make_root(tmp_path / "not-yet")], journal)
    assert watcher.rescan() == 0
    assert journal.files() == []


def test_a_refused_symlink_is_logged_once_per_path(
    tmp_path: Path, watch: Path, journal: Journal
) -> None:
    outside = write_video(tmp_path / "elsewhere" / "private.mp4", 10)
    (watch / "out.mp4").symlink_to(outside)
    (watch / "dangling.mp4").symlink_to(watch / "nothing.mp4")
    (watch / "folder.mp4").mkdir()
    (watch / "to-folder.mp4").symlink_to(watch / "folder.mp4")
    (watch / "notes.txt").symlink_to(outside)  # not a candidate by its name: nothing to say
    (watch / "in.mp4").symlink_to(write_video(watch / "real.mp4", 10))  # followed
    watcher = Watcher([make_root(watch)], journal)
    with capture_logs() as logs:
        assert watcher.rescan() == 2
        assert watcher.rescan() == 0
    refused = {e["path"]: e["reason"] for e in logs if e["event"] == "symlink not followed"}
    assert len([e for e in logs if e["event"] == "symlink not followed"]) == 3  # not per rescan
    assert refused == {
        str(watch / "out.mp4"): "it leads outside the watch folder",
        str(watch / "dangling.mp4"): "its target cannot be read: No such file or directory",
        str(watch / "to-folder.mp4"): "it does not lead to a regular file",
    }
    assert all(e["log_level"] == "warning" for e in logs if e["event"] == "symlink not followed")


def test_a_rescan_picks_up_a_file_skipped_under_older_rules(watch: Path, journal: Journal) -> None:
    clip = write_video(watch / "clip.xyz", 10)
    st = clip.stat()
    observed = Observation(str(clip), str(watch), st.st_size, st.st_mtime_ns)
    journal.record_rejection(observed, "extension 'xyz' is not in the configured extensions")
    assert Watcher([make_root(watch)], journal).rescan() == 0  # still not a candidate
    wider = dataclasses.replace(make_root(watch), extensions=frozenset({"mp4", "xyz"}))
    watcher = Watcher([wider], journal)
    assert watcher.rescan() == 1
    assert watcher.rescan() == 0
    assert states(journal, clip) == [State.SKIPPED, State.SETTLING]


def test_a_root_replaced_by_a_file_is_logged_as_not_a_folder_once(
    tmp_path: Path, journal: Journal
) -> None:
    missing, blocker = tmp_path / "not-yet", write_video(tmp_path / "a-file", 10)
    watcher = Watcher([make_root(missing), make_root(blocker)], journal)
    with capture_logs() as logs:
        for _ in range(3):
            assert watcher.rescan() == 0
    events = [(e["event"], e["path"]) for e in logs]
    assert events == [
        ("watch folder does not exist (yet)", str(missing)),
        ("watch path is not a folder", str(blocker)),
    ]


def test_rescan_keeps_roots_apart(tmp_path: Path, journal: Journal) -> None:
    # "watch2" starts with "watch": its done rows must not hide files in "watch" or back.
    first = write_video(tmp_path / "watch" / "a.mp4", 10)
    second = write_video(tmp_path / "watch2" / "a.mp4", 10)
    roots = [make_root(tmp_path / "watch"), make_root(tmp_path / "watch2")]
    watcher = Watcher(roots, journal)
    assert watcher.rescan(roots[1:]) == 1
    mark_done(journal, second)
    assert watcher.rescan() == 1
    assert states(journal, first) == [State.SETTLING]
    assert journal.by_path(str(first))[0].watch_root == str(tmp_path / "watch")
    assert states(journal, second) == [State.DONE]


# ---- pump (events handed over by the watchdog handler) --------------------------------


def test_pump_walks_a_folder_reported_as_one_event(tmp_path: Path, journal: Journal) -> None:
    # Some backends report only the folder when a tree is moved in: its files raise no events.
    watch = tmp_path / "watch"
    wanted = {
        str(write_video(watch / "shoot" / "a.mp4", 10)),
        str(write_video(watch / "shoot" / "day2" / "b.mov", 10)),
    }
    write_video(watch / "shoot" / ".cache" / "c.mp4", 10)
    write_video(watch / "shoot" / "d.mp4.part", 10)
    write_video(watch / ".trash" / "e.mp4", 10)
    root = make_root(watch)
    watcher = Watcher([root], journal)
    handler = watcher_module._Handler(root, watcher._inbox)
    handler.dispatch(DirMovedEvent(str(tmp_path / "staging"), str(watch / "shoot")))
    handler.dispatch(DirCreatedEvent(str(watch / ".trash")))
    assert watcher.pump(1.0) == 2
    assert paths(journal) == wanted


def test_pump_ignores_deletions_and_folder_modifications(watch: Path, journal: Journal) -> None:
    kept = write_video(watch / "a.mp4", 10)
    moved = write_video(watch / "b.mp4", 10)
    root = make_root(watch)
    watcher = Watcher([root], journal)
    handler = watcher_module._Handler(root, watcher._inbox)
    handler.dispatch(FileDeletedEvent(str(kept)))
    handler.dispatch(DirModifiedEvent(str(watch)))
    assert watcher.pump(0.05) == 0
    handler.dispatch(FileMovedEvent(str(watch / "b.mp4.part"), str(moved)))
    assert watcher.pump(1.0) == 1
    assert paths(journal) == {str(moved)}


# ---- live watching (real watchdog observer) -------------------------------------------


def pump_until(watcher: Watcher, condition: Callable[[], bool], what: str) -> None:
    def check() -> bool:
        watcher.pump(0.1)
        return condition()

    wait_for(check, LIVE_TIMEOUT, what=what)


def has_rows(journal: Journal, *expected: Path) -> bool:
    return {str(p) for p in expected} <= paths(journal)


def test_live_new_file_is_journaled(watch: Path, journal: Journal) -> None:
    watcher = Watcher([make_root(watch)], journal)
    watcher.start()
    try:
        path = write_video(watch / "a.mp4", 2048)
        pump_until(watcher, lambda: has_rows(journal, path), "a row for a.mp4")
        (rec,) = journal.by_path(str(path))
        assert rec.state is State.SETTLING and rec.watch_root == str(watch)
    finally:
        watcher.stop()


def test_live_temp_name_renamed_to_a_video(watch: Path, journal: Journal) -> None:
    watcher = Watcher([make_root(watch)], journal)
    watcher.start()
    try:
        temp = write_video(watch / "export.mp4.part", 4096)
        final = watch / "export.mp4"
        temp.rename(final)
        pump_until(watcher, lambda: has_rows(journal, final), "a row for the renamed file")
        assert paths(journal) == {str(final)}
        assert journal.by_path(str(final))[0].size == 4096
    finally:
        watcher.stop()


def test_live_folder_moved_in_brings_its_files(
    tmp_path: Path, watch: Path, journal: Journal
) -> None:
    staging = tmp_path / "staging" / "shoot"
    wanted = [
        write_video(staging / "a.mp4", 100),
        write_video(staging / "b.MOV", 100),
        write_video(staging / "day2" / "deep" / "c.mkv", 100),
    ]
    write_video(staging / ".hidden" / "d.mp4", 100)
    write_video(staging / "e.mp4.part", 100)
    write_video(staging / "._a.mp4", 100)
    watcher = Watcher([make_root(watch)], journal)
    watcher.start()
    try:
        staging.rename(watch / "shoot")
        moved = [watch / "shoot" / p.relative_to(staging) for p in wanted]
        pump_until(watcher, lambda: has_rows(journal, *moved), "rows for the moved folder")
        assert paths(journal) == {str(p) for p in moved}
    finally:
        watcher.stop()


def test_live_ignored_names_never_get_rows(watch: Path, journal: Journal) -> None:
    watcher = Watcher([make_root(watch, recursive=False)], journal)
    watcher.start()
    try:
        write_video(watch / "a.mp4.part", 10)
        write_video(watch / "a.mp4.crdownload", 10)
        write_video(watch / "a.mp4~", 10)
        write_video(watch / ".a.mp4", 10)
        write_video(watch / "._a.mp4", 10)
        write_video(watch / "notes.txt", 10)
        (watch / "sub").mkdir()
        write_video(watch / "sub" / "deep.mp4", 10)  # the watch is not recursive
        (watch / "folder.mp4").mkdir()
        # Events arrive in order: once the sentinel has a row, everything before was pumped.
        sentinel = write_video(watch / "zz-last.mp4", 10)
        pump_until(watcher, lambda: has_rows(journal, sentinel), "a row for the sentinel")
        assert paths(journal) == {str(sentinel)}
    finally:
        watcher.stop()


def test_live_root_created_after_start_is_picked_up(tmp_path: Path, journal: Journal) -> None:
    late = tmp_path / "late"
    root = make_root(late)
    watcher = Watcher([root], journal)
    watcher.start()
    try:
        assert watcher.ensure_watching() == []
        assert watcher.pump(0.05) == 0
        late.mkdir()
        assert watcher.ensure_watching() == [root]
        assert watcher.ensure_watching() == []  # already watched: no second observer
        path = write_video(late / "a.mp4", 10)
        pump_until(watcher, lambda: has_rows(journal, path), "a row in the late root")
        assert len(journal.by_path(str(path))) == 1
    finally:
        watcher.stop()
