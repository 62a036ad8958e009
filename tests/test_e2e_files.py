"""End to end, "nothing lost, nothing corrupt": awkward files and folders on the watched disk.

Every scenario runs `mavi-uploader` as a subprocess against its own fake server. Those that
wait on the daemon's own timers (the re-check of missing folders, 10 s by default; of
unreadable files, 30 s) shorten them through the hidden [timers] table. They all start
together in the background (see `Background` in conftest.py) and each test checks one when
it is done.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import (
    Background,
    DaemonProcess,
    ScenarioRun,
    exit_code_within,
    logged,
    logged_done,
    new_daemon,
    sha256_of,
    shown,
    start_fake,
    wait_for,
    write_video,
)
from fakemavi import Fault

BACKGROUND = Background()
Collect = Callable[..., Any]  # the `scenario` fixture


Run = ScenarioRun


def wait_done(daemon: DaemonProcess, *videos: Path, timeout: float = 30.0, note: str = "") -> None:
    wanted = {shown(v) for v in videos}
    what = f"{sorted(wanted)} done{note}"
    wait_for(lambda: logged_done(daemon) >= wanted, timeout, 0.1, what)


def wait_logged(daemon: DaemonProcess, timeout: float = 30.0, **fields: Any) -> None:
    wait_for(lambda: logged(daemon, **fields), timeout, 0.1, f"log line with {fields}")


# ---- names -----------------------------------------------------------------------------------

ODD_NAMES = [
    "with  spaces .mp4",
    'it\'s "quoted".mov',
    "new\nline.mp4",
    "emoji 🎬🎞️ clip.mp4",
    "back\\slash;semi&amp?#hash%25.mp4",
]


def deep_path(root: Path) -> Path:
    """12 folders of 200 bytes each and a 200-byte name: ~2.6 KB, under PATH_MAX (4 KB)."""
    folder = root
    for level in range(12):
        folder = folder / f"{level:02}{'d' * 198}"
    return folder / f"{'L' * 196}.mp4"


@BACKGROUND
def unusual_names_are_uploaded(tmp: Path, stack: contextlib.ExitStack) -> Run:
    fake = start_fake(stack)
    daemon = new_daemon(stack, tmp, fake)
    videos = [write_video(daemon.watch / name, 40_000) for name in ODD_NAMES]
    videos.append(write_video(deep_path(daemon.watch), 40_000))
    daemon.start("--once")
    return Run(fake, daemon, exit_code_within(daemon, 60), seen={"videos": videos}).read_reports()


def test_unusual_names_are_uploaded(scenario: Collect) -> None:
    run: Run = scenario()
    assert run.exit_code == 0, run.daemon.log_text()[-3000:]
    videos: list[Path] = run.seen["videos"]
    assert len(run.rows) == len(videos)
    run.assert_uploaded_whole(*videos)
    assert sorted(a.filename for a in run.fake.assets.values()) == sorted(v.name for v in videos)


@BACKGROUND
def non_utf8_name_is_uploaded(tmp: Path, stack: contextlib.ExitStack) -> Run:
    fake = start_fake(stack)
    daemon = new_daemon(stack, tmp, fake)
    raw = os.fsencode(daemon.watch) + b"/caf\xe9 \xff.mp4"  # Latin-1 from an old camera
    with open(raw, "wb") as fileobj:
        fileobj.write(os.urandom(30_000))
    daemon.start("--once")
    code = exit_code_within(daemon, 25)
    return Run(fake, daemon, code, seen={"video": Path(os.fsdecode(raw))}).read_reports()


def test_non_utf8_name_is_uploaded(scenario: Collect) -> None:
    run: Run = scenario()
    video: Path = run.seen["video"]
    assert run.exit_code == 0
    row = run.rows[shown(video)]  # reports show "caf\xe9 \xff.mp4"
    assert row["state"] == "done"
    assert row["sha256"] == sha256_of(video)
    assert run.fake.uploads[row["asset_id"]].sha256 == row["sha256"]
    # MAVI gets a valid UTF-8 rendering of the name.
    name = os.fsencode(video.name)
    readable = {name.decode("utf-8", "replace"), name.decode("utf-8", "backslashreplace")}
    assert run.fake.assets[row["asset_id"]].filename in readable


# ---- files that change under the daemon ------------------------------------------------------


@BACKGROUND
def empty_file_is_skipped(tmp: Path, stack: contextlib.ExitStack) -> Run:
    fake = start_fake(stack)
    daemon = new_daemon(stack, tmp, fake)
    empty = daemon.watch / "empty.mp4"
    empty.touch()
    video = write_video(daemon.watch / "real.mp4", 10_000)
    daemon.start("--once")
    seen = {"empty": empty, "video": video}
    return Run(fake, daemon, exit_code_within(daemon, 60), seen=seen).read_reports()


def test_empty_file_is_skipped(scenario: Collect) -> None:
    run: Run = scenario()
    assert run.exit_code == 0
    row = run.rows[str(run.seen["empty"])]
    assert row["state"] == "skipped"
    assert "empty" in row["last_error"]
    assert row["asset_id"] is None
    run.assert_uploaded_whole(run.seen["video"])
    assert [a.filename for a in run.fake.assets.values()] == ["real.mp4"]


@BACKGROUND
def file_deleted_while_settling_vanishes(tmp: Path, stack: contextlib.ExitStack) -> Run:
    fake = start_fake(stack)
    daemon = new_daemon(stack, tmp, fake, settle_seconds=60)
    daemon.start()
    daemon.wait_ready()
    gone = write_video(daemon.watch / "gone.mp4", 10_000)
    wait_logged(daemon, event="transition", path=str(gone), state="settling")
    gone.unlink()
    wait_logged(daemon, event="transition", path=str(gone), state="vanished")
    # The settle tick logs each move inside its batch, a moment before the batch commits.
    wait_for(
        lambda: any(r["state"] == "vanished" for r in daemon.files() if r["path"] == str(gone)),
        30,
        what="the vanished row committed",
    )
    return Run(fake, daemon, seen={"gone": gone}).read_reports()


def test_file_deleted_while_settling_vanishes(scenario: Collect) -> None:
    run: Run = scenario()
    assert run.rows[str(run.seen["gone"])]["state"] == "vanished"
    assert run.fake.calls == []


@BACKGROUND
def file_deleted_while_queued_vanishes(tmp: Path, stack: contextlib.ExitStack) -> Run:
    fake = start_fake(stack)
    daemon = new_daemon(stack, tmp, fake, settle_seconds=60, concurrency=1)
    blocker = write_video(daemon.watch / "blocker.mp4", 2_000_000)
    # The only worker stays busy (storage holds its answer until released) while the victim
    # is enqueued and deleted, however slow the machine is.
    fake.inject("storage", Fault("hold"))
    daemon.start()
    daemon.wait_ready()
    assert daemon.cli("enqueue", str(blocker)).returncode == 0
    wait_for(lambda: fake.holding == 1, timeout=30, what="blocker.mp4 waiting for storage")
    victim = write_video(daemon.watch / "victim.mp4", 10_000)
    result = daemon.cli("enqueue", str(victim))
    victim.unlink()
    assert shown(blocker) not in logged_done(daemon), "the blocker was done too soon"
    fake.release_held()
    wait_done(daemon, blocker)
    try:
        wait_logged(daemon, event="transition", path=str(victim), state="vanished")
    except pytest.fail.Exception:  # say where it got to (seen once in CI on a loaded machine)
        history = daemon.cli("history", str(victim))
        pytest.fail(
            f"victim.mp4 never vanished; enqueue said {result.returncode} {result.stdout!r}"
            f" {result.stderr!r}; history: {history.stdout}{history.stderr}"
        )
    seen = {"blocker": blocker, "victim": victim, "enqueue": result}
    return Run(fake, daemon, seen=seen).read_reports()


def test_file_deleted_while_queued_vanishes(scenario: Collect) -> None:
    run: Run = scenario()
    assert run.seen["enqueue"].returncode == 0, run.seen["enqueue"].stderr
    assert run.rows[str(run.seen["victim"])]["state"] == "vanished"
    run.assert_uploaded_whole(run.seen["blocker"])
    assert [a.filename for a in run.fake.assets.values()] == ["blocker.mp4"]


@BACKGROUND
def file_appended_while_uploading_is_uploaded_again_in_full(
    tmp: Path, stack: contextlib.ExitStack
) -> Run:
    fake = start_fake(stack)
    daemon = new_daemon(stack, tmp, fake)
    fake.inject("storage", Fault("hold"))  # keeps the first upload in flight until released
    daemon.start()
    daemon.wait_ready()
    video = write_video(daemon.watch / "growing.mp4", 2_000_000)
    first = sha256_of(video)
    # Once its bytes moved (the worker checks the file again after the send; before it, once
    # signed): storage has them all and holds its answer.
    wait_for(lambda: fake.holding == 1, timeout=30, what="growing.mp4 sent, answer held")
    with open(video, "ab") as fileobj:  # the camera was not finished after all
        fileobj.write(os.urandom(1_000_000))
    fake.release_held()
    wait_done(daemon, video, timeout=40)
    return Run(fake, daemon, seen={"video": video, "first": first}).read_reports()


def test_file_appended_while_uploading_is_uploaded_again_in_full(scenario: Collect) -> None:
    run: Run = scenario()
    video: Path = run.seen["video"]
    run.assert_uploaded_whole(video)
    assert run.rows[str(video)]["size"] == 3_000_000
    cut, whole = run.fake.completed
    assert (cut.size, cut.sha256) == (2_000_000, run.seen["first"])
    assert run.rows[str(video)]["asset_id"] == whole.asset_id != cut.asset_id


# ---- permissions -----------------------------------------------------------------------------

AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


class UnprivilegedDaemon(DaemonProcess):
    """The daemon (and its CLI) as `nobody` when the tests run as root, who reads anything."""

    def command(self, *args: str) -> list[str]:
        prefix = AS_NOBODY if os.geteuid() == 0 else []
        return [*prefix, *super().command(*args)]


def unprivileged_base(stack: contextlib.ExitStack) -> Path:
    """A folder `nobody` can reach (pytest's tmp_path is under a 0700 folder of root's)."""
    base = Path(tempfile.mkdtemp(prefix="mavi-e2e-nobody-"))
    stack.callback(shutil.rmtree, base, ignore_errors=True)
    base.chmod(0o755)
    if os.geteuid() != 0:
        return base
    probe = subprocess.run(
        [*AS_NOBODY, sys.executable, "-c", "import mavi_uploader"],
        capture_output=True, text=True, cwd=base, timeout=60, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        pytest.skip(f"cannot run the daemon as nobody: {probe.stderr.strip() or probe}")
    state = base / "state"
    state.mkdir(mode=0o700)
    shutil.chown(state, "nobody", "nogroup")
    return base


@BACKGROUND
def unreadable_file_waits_for_its_permissions(tmp: Path, stack: contextlib.ExitStack) -> Run:
    base = unprivileged_base(stack)
    fake = start_fake(stack)
    daemon = new_daemon(stack, base, fake, cls=UnprivilegedDaemon, timers={"unreadable_retry": 0.5})
    daemon.watch.chmod(0o755)
    readable = [write_video(daemon.watch / f"ok{n}.mp4", 20_000 + n) for n in range(2)]
    locked = write_video(daemon.watch / "locked.mp4", 30_000)
    locked.chmod(0o000)
    daemon.start()
    wait_done(daemon, *readable)
    wait_logged(daemon, event="file not ready", path=str(locked))
    before = {row["path"]: row for row in daemon.files()}
    locked.chmod(0o644)  # a person fixes it; the daemon looks again (every 30 s; 0.5 s here)
    wait_done(daemon, locked)
    seen = {"readable": readable, "locked": locked, "before": before}
    return Run(fake, daemon, seen=seen).read_reports()


def test_unreadable_file_waits_for_its_permissions(scenario: Collect) -> None:
    run: Run = scenario()
    locked: Path = run.seen["locked"]
    row = run.seen["before"][str(locked)]
    assert row["state"] in ("settling", "queued"), row
    assert "permission" in row["last_error"].lower(), row
    assert all(r["state"] == "done" for p, r in run.seen["before"].items() if p != str(locked))
    run.assert_uploaded_whole(*run.seen["readable"], locked)
    assert all(row["state"] != "failed" for row in run.rows.values())


@BACKGROUND
def unreadable_folder_is_watched_once_readable(tmp: Path, stack: contextlib.ExitStack) -> Run:
    base = unprivileged_base(stack)
    fake = start_fake(stack)
    daemon = new_daemon(stack, base, fake, cls=UnprivilegedDaemon, timers={"watch_retry": 0.5})
    daemon.watch.chmod(0o755)
    daemon.start()
    daemon.wait_ready()
    staged = base / "card"
    first = write_video(staged / "clip1.mp4", 20_000)
    staged.chmod(0o700)  # root's: the daemon's user cannot list it
    card = daemon.watch / "card"
    os.rename(staged, card)
    wait_logged(daemon, event="cannot list folder", path=str(card))
    card.chmod(0o755)  # a person fixes it; the daemon looks again (every 10 s; 0.5 s here)
    wait_done(daemon, card / first.name)
    later = write_video(card / "clip2.mp4", 25_000)  # seen only if the folder is now watched
    wait_done(daemon, later, timeout=20, note=" (by a file event, not the hourly rescan)")
    return Run(fake, daemon, seen={"videos": [card / first.name, later]}).read_reports()


def test_unreadable_folder_is_watched_once_readable(scenario: Collect) -> None:
    run: Run = scenario()
    run.assert_uploaded_whole(*run.seen["videos"])


# ---- symbolic links --------------------------------------------------------------------------


@BACKGROUND
def symlinks_stay_inside_the_watch_folder(tmp: Path, stack: contextlib.ExitStack) -> Run:
    fake = start_fake(stack)
    daemon = new_daemon(stack, tmp, fake, dedupe=False)
    watch = daemon.watch
    outside = write_video(tmp / "outside" / "private.mp4", 30_000)
    real = write_video(watch / "inside" / "real.mp4", 20_000)
    (watch / "link-out.mp4").symlink_to(outside)
    (watch / "link-in.mp4").symlink_to(real)
    (watch / "loop").symlink_to(watch, target_is_directory=True)
    (watch / "inside" / "back").symlink_to("..", target_is_directory=True)
    daemon.start()
    daemon.wait_ready(timeout=30)  # the loops must not hang the start-up scan
    wait_done(daemon, real, watch / "link-in.mp4")
    # Links made while it runs: a file, a folder outside the root, and one more loop.
    (watch / "later-out.mp4").symlink_to(outside)
    (watch / "outside-folder").symlink_to(outside.parent, target_is_directory=True)
    (watch / "inside" / "loop2").symlink_to(watch, target_is_directory=True)
    after = write_video(watch / "after.mp4", 25_000)
    wait_done(daemon, after)
    try:
        exit_code = daemon.kill(signal.SIGTERM)
    except subprocess.TimeoutExpired:
        pytest.fail("the daemon did not stop within 30 s of SIGTERM")
    seen = {"outside": outside, "uploaded": [real, watch / "link-in.mp4", after]}
    return Run(fake, daemon, exit_code, seen=seen).read_reports()


def test_symlinks_stay_inside_the_watch_folder(scenario: Collect) -> None:
    run: Run = scenario()
    assert run.exit_code == 0
    uploaded: list[Path] = run.seen["uploaded"]
    run.assert_uploaded_whole(*uploaded)
    assert sorted(run.rows) == sorted(str(p) for p in uploaded)
    assert sha256_of(run.seen["outside"]) not in run.fake.received_sha256s()
    assert sorted(a.filename for a in run.fake.assets.values()) == sorted(p.name for p in uploaded)


# ---- watch folders that come and go ---------------------------------------------------------


@BACKGROUND
def watch_folder_created_after_start(tmp: Path, stack: contextlib.ExitStack) -> Run:
    fake = start_fake(stack)
    watch = tmp / "card" / "DCIM"
    daemon = new_daemon(stack, tmp, fake, watch, create_watch=False, timers={"watch_retry": 0.5})
    daemon.start()
    daemon.wait_ready()
    wait_logged(daemon, event="watch folder does not exist (yet)")
    first = write_video(watch / "first.mp4", 20_000)  # creates the folder too
    wait_done(daemon, first)  # missing folders are looked for every 10 s (0.5 s here)
    second = write_video(watch / "second.mp4", 20_000)  # now it is watched
    wait_done(daemon, second, timeout=15)
    return Run(fake, daemon, seen={"videos": [first, second]}).read_reports()


def test_watch_folder_created_after_start(scenario: Collect) -> None:
    run: Run = scenario()
    run.assert_uploaded_whole(*run.seen["videos"])


@BACKGROUND
def watch_folder_replaced_by_a_new_one(tmp: Path, stack: contextlib.ExitStack) -> Run:
    fake = start_fake(stack)
    daemon = new_daemon(stack, tmp, fake, timers={"watch_retry": 0.5})
    daemon.start()
    daemon.wait_ready()
    before = write_video(daemon.watch / "before.mp4", 20_000)
    wait_done(daemon, before)
    daemon.watch.rename(tmp / "old-card")  # the old folder lives on elsewhere...
    daemon.watch.mkdir()  # ...and a new one takes its place
    after = write_video(daemon.watch / "after.mp4", 20_000)
    wait_done(daemon, after)  # folders are re-checked every 10 s (0.5 s here)
    return Run(fake, daemon, seen={"before": before, "after": after}).read_reports()


def test_watch_folder_replaced_by_a_new_one(scenario: Collect) -> None:
    run: Run = scenario()
    run.assert_uploaded_whole(run.seen["after"])
    assert run.rows[str(run.seen["before"])]["state"] == "done"
    assert [u.filename for u in run.fake.completed] == ["before.mp4", "after.mp4"]


def create_with_inode(folder: Path, inode: int, tries: int = 100) -> bool:
    """Create `folder` with the inode number it had, if the file system hands it out again.

    ext4 gives a new folder a free inode near its siblings', usually the one just freed but
    not always: make sibling folders until one gets it and rename that one into place. False
    (and a plain new folder) if none does, e.g. on tmpfs, whose inode numbers only go up.
    """
    for n in range(tries):
        candidate = folder.with_name(f"{folder.name}.spare{n}")
        candidate.mkdir()
        if candidate.stat().st_ino == inode:
            candidate.rename(folder)
            return True
    folder.mkdir()
    return False


@BACKGROUND
def watch_folder_removed_and_created_again(tmp: Path, stack: contextlib.ExitStack) -> Run:
    fake = start_fake(stack)
    daemon = new_daemon(stack, tmp, fake, timers={"watch_retry": 0.5})
    daemon.start()
    daemon.wait_ready()
    before = write_video(daemon.watch / "before.mp4", 20_000)
    wait_done(daemon, before)
    inode = daemon.watch.stat().st_ino
    shutil.rmtree(daemon.watch)  # the card is ejected...
    same_inode = create_with_inode(daemon.watch, inode)  # ...and put back
    after = write_video(daemon.watch / "after.mp4", 20_000)
    # Folders are re-checked every 10 s (0.5 s here).
    wait_done(daemon, after, note=f" (new folder has the old inode: {same_inode})")
    return Run(fake, daemon, seen={"before": before, "after": after}).read_reports()


def test_watch_folder_removed_and_created_again(scenario: Collect) -> None:
    run: Run = scenario()
    # Usually the new folder has the old one's inode (see create_with_inode), which is the
    # hard case: the watcher cannot tell it from the folder it lost.
    run.assert_uploaded_whole(run.seen["after"])
    assert run.rows[str(run.seen["before"])]["state"] == "done"
    assert [u.filename for u in run.fake.completed] == ["before.mp4", "after.mp4"]


@BACKGROUND
def polling_watch_sees_new_files(tmp: Path, stack: contextlib.ExitStack) -> Run:
    fake = start_fake(stack)
    daemon = new_daemon(stack, tmp, fake)
    with open(daemon.config_path, "a", encoding="utf-8") as config:  # into the [[watch]] table
        config.write("poll = true\npoll_interval_seconds = 0.5\n")
    daemon.start()
    daemon.wait_ready()
    videos = [
        write_video(daemon.watch / "top.mp4", 20_000),
        write_video(daemon.watch / "sub" / "folder" / "deep.mp4", 20_000),
    ]
    wait_done(daemon, *videos, timeout=20)
    seen = {"videos": videos, "watching": logged(daemon, event="watching")}
    return Run(fake, daemon, seen=seen).read_reports()


def test_polling_watch_sees_new_files(scenario: Collect) -> None:
    run: Run = scenario()
    assert [w["polling"] for w in run.seen["watching"]] == [True]
    run.assert_uploaded_whole(*run.seen["videos"])


# ---- a card with 2,000 clips -----------------------------------------------------------------

MANY = 2000


@BACKGROUND
def two_thousand_files_moved_in_at_once(tmp: Path, stack: contextlib.ExitStack) -> Run:
    fake = start_fake(stack, store_bodies=False)
    daemon = new_daemon(stack, tmp, fake, concurrency=4, rate_limit_per_second=0)
    if os.path.isdir("/dev/shm"):
        # Several journal commits per file, each fsynced (synchronous = FULL): on tmpfs they cost
        # nothing, and this test is about the watcher and the queue missing no file.
        state = Path(tempfile.mkdtemp(prefix="mavi-e2e-journal-", dir="/dev/shm"))
        stack.callback(shutil.rmtree, state, ignore_errors=True)
        daemon.state_dir = state
        daemon.env["MAVI_UPLOADER_STATE_DIR"] = str(state)
    card = tmp / "card"
    videos = [
        write_video(card / "DCIM" / f"{n // 500:03}" / f"C{n:04}.MP4", 64) for n in range(MANY)
    ]
    expected = sorted(sha256_of(v) for v in videos)
    daemon.start()
    daemon.wait_ready()
    os.rename(card, daemon.watch / "card")
    wait_for(lambda: len(fake.completed) >= MANY, timeout=100, interval=0.5, what="2000 uploads")
    wait_for(lambda: len(logged_done(daemon)) >= MANY, timeout=30, interval=0.5, what="all done")
    return Run(fake, daemon, seen={"expected": expected}).read_reports()


def test_two_thousand_files_moved_in_at_once(scenario: Collect) -> None:
    run: Run = scenario()
    assert len(run.rows) == MANY
    assert {row["state"] for row in run.rows.values()} == {"done"}
    assert sorted(run.fake.received_sha256s()) == run.seen["expected"]
    for row in run.rows.values():
        assert run.fake.uploads[row["asset_id"]].sha256 == row["sha256"]
