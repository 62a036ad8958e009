"""End to end: `mavi-uploader run` as a subprocess against the fake MAVI server."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from conftest import API_KEY, DaemonProcess, sha256_of, wait_for, write_video
from fakemavi import FakeMavi, Fault
from mavi_uploader.journal.sqlite import schema
from mavi_uploader.journal.sqlite.store import DB_NAME
from mavi_uploader.service.lock import StateDirLock

DaemonFactory = Callable[..., DaemonProcess]


def done_count(daemon: DaemonProcess) -> int:
    counts = daemon.status()["counts"]
    return int(counts["done"]) + int(counts["duplicate"])


def test_once_uploads_a_folder_and_exits_0(fake: FakeMavi, daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory()
    watch = daemon.watch
    videos = [
        write_video(watch / "a.mp4", 2_500_000),
        write_video(watch / "with space 'quoted'.mov", 70_000),
        write_video(watch / "day1" / "cam B" / "C0001.MXF", 300_000),
    ]
    write_video(watch / "render.mp4.part", 1000)
    write_video(watch / ".hidden.mp4", 1000)
    write_video(watch / "._a.mp4", 1000)
    (watch / "notes.txt").write_text("not a video")

    result = daemon.start("--once").wait_exit()

    assert result == 0, daemon.log_text()
    assert sorted(fake.received_sha256s()) == sorted(sha256_of(v) for v in videos)
    status = daemon.cli_status()  # the commands themselves: the contract
    assert status["state_dir"] == str(daemon.state_dir)
    assert status["daemon"] == {"running": False, "pid": None}
    assert status["paused"] is None
    assert status["counts"] == {
        "settling": 0, "queued": 0, "uploading": 0, "confirming": 0, "done": 3,
        "duplicate": 0, "failed": 0, "vanished": 0, "skipped": 0,
    }  # fmt: skip
    listed = daemon.cli_files()
    # What the other tests poll (the journal read in-process) is what the commands print.
    assert daemon.status() == status and daemon.files() == listed
    files = {f["path"]: f for f in listed}
    for video in videos:
        row = files[str(video)]
        assert row["state"] == "done"
        assert row["sha256"] == sha256_of(video)
        assert row["asset_id"] in fake.uploads
        assert fake.uploads[row["asset_id"]].sha256 == row["sha256"]
        assert {"id", "size", "attempts", "last_error", "updated_at"} <= row.keys()
    log = daemon.log_text()
    assert API_KEY not in log
    for asset in fake.assets.values():
        assert asset.signature not in log


def test_slowly_written_file_is_uploaded_once_and_whole(
    fake: FakeMavi, daemon_factory: DaemonFactory
) -> None:
    daemon = daemon_factory(settle_seconds=0.5)
    daemon.start()
    daemon.wait_ready()
    target = daemon.watch / "camera.mp4"
    # A camera writing 1 MB every 0.2 s for ~1.6 s: never quiet for settle_seconds, writing
    # for longer. The sleeps only pace the writer: one stretched by a loaded machine changes
    # nothing, since the file stays open for writing until the end (the writer probe).
    with open(target, "wb") as fileobj:
        for block in range(8):
            fileobj.write(bytes([block]) * 1_000_000)
            fileobj.flush()
            time.sleep(0.2)
    wait_for(lambda: done_count(daemon) == 1, timeout=30, what="camera.mp4 done")
    assert fake.received_sha256s() == [sha256_of(target)]
    assert [u.size for u in fake.completed] == [8_000_000]


def test_export_to_temp_name_then_rename(fake: FakeMavi, daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory()
    daemon.start()
    daemon.wait_ready()
    temp = write_video(daemon.watch / "export.mp4.tmp", 1_500_000)
    final = daemon.watch / "export.mp4"
    os.rename(temp, final)
    wait_for(lambda: done_count(daemon) == 1, what="export.mp4 done")
    assert fake.received_sha256s() == [sha256_of(final)]
    assert [u.filename for u in fake.completed] == ["export.mp4"]


def test_folder_moved_in_is_uploaded(
    fake: FakeMavi, daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    daemon = daemon_factory()
    daemon.start()
    daemon.wait_ready()
    outside = tmp_path / "card"
    clips = [write_video(outside / "DCIM" / f"C{n:04}.MP4", 50_000 + n) for n in range(5)]
    expected = sorted(sha256_of(c) for c in clips)
    os.rename(outside, daemon.watch / "card")
    wait_for(lambda: done_count(daemon) == 5, what="5 clips done")
    assert sorted(fake.received_sha256s()) == expected


def test_a_watch_path_that_is_a_symlink_sees_new_files_and_folders(
    fake: FakeMavi, daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    real = tmp_path / "real-footage"
    real.mkdir()
    link = tmp_path / "footage"
    link.symlink_to(real)
    daemon = daemon_factory(watch=link)
    daemon.start()
    daemon.wait_ready()
    clips = [write_video(link / "top.mp4", 30_000), write_video(link / "new" / "deep.mp4", 40_000)]
    wait_for(lambda: done_count(daemon) == 2, what="files under the symlinked watch done")
    assert sorted(fake.received_sha256s()) == sorted(sha256_of(c) for c in clips)
    result = daemon.cli("enqueue", str(link / "top.mp4"))  # named through the link: known
    assert result.returncode == 0 and "done" in result.stdout, result.stderr


def test_kill_9_and_restart_loses_nothing(fake: FakeMavi, daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory(concurrency=2)
    videos = [write_video(daemon.watch / f"clip{n}.mp4", 400_000 + n) for n in range(8)]
    # Storage takes both workers' bytes and holds its answers: the kill finds them in flight.
    fake.inject("storage", Fault("hold"), times=2)
    daemon.start()
    wait_for(lambda: fake.holding == 2, what="two uploads waiting for storage's answer")
    assert daemon.kill(signal.SIGKILL) == -signal.SIGKILL
    fake.release_held()  # the answers go to a dead process
    later = write_video(daemon.watch / "added-while-down.mp4", 123_456)
    daemon.start()
    wait_for(lambda: done_count(daemon) == 9, timeout=40, what="all 9 done after restart")
    received = set(fake.received_sha256s())
    assert received == {sha256_of(v) for v in [*videos, later]}
    files = daemon.files()
    assert all(f["state"] == "done" for f in files)
    assert len({f["asset_id"] for f in files}) == 9
    # Uploads that landed just before the kill are found by the metadata check on restart,
    # not sent again: at most the ones cut off mid-body are re-sent (never accepted twice).
    assert len(fake.completed) == 9, [u.filename for u in fake.completed]


def test_restart_does_not_upload_done_files_again(
    fake: FakeMavi, daemon_factory: DaemonFactory
) -> None:
    daemon = daemon_factory()
    write_video(daemon.watch / "one.mp4", 10_000)
    assert daemon.start("--once").wait_exit() == 0
    assert len(fake.completed) == 1
    write_video(daemon.watch / "two.mp4", 20_000)
    assert daemon.start("--once").wait_exit() == 0
    assert [u.filename for u in fake.completed] == ["one.mp4", "two.mp4"]


def test_after_upload_move_left_owed_is_finished_by_the_next_start(
    fake: FakeMavi, daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    done_dir = tmp_path / "uploaded"
    daemon = daemon_factory(after_upload="move", done_dir=str(done_dir))
    moved_at_once = write_video(daemon.watch / "day1" / "a.mp4", 30_000, seed=1)
    assert daemon.start("--once").wait_exit() == 0
    assert sha256_of(done_dir / "day1" / "a.mp4") == fake.received_sha256s()[0]
    assert not moved_at_once.exists()

    done_dir.rename(tmp_path / "uploaded-away")
    done_dir.write_text("a file where the folder should be")  # the next move fails
    stuck = write_video(daemon.watch / "b.mp4", 40_000, seed=2)
    digest = sha256_of(stuck)
    assert daemon.start("--once").wait_exit() == 0  # uploaded; only the move is owed
    (row,) = [f for f in daemon.files() if f["path"] == str(stuck)]
    assert row["state"] == "done" and "after_upload move failed" in row["last_error"]
    assert stuck.exists()

    done_dir.unlink()
    assert daemon.start("--once").wait_exit() == 0
    assert not stuck.exists() and sha256_of(done_dir / "b.mp4") == digest
    assert len(fake.completed) == 2  # the restart moved it; nothing was uploaded again
    (row,) = [f for f in daemon.files() if f["path"] == str(stuck)]
    assert row["last_error"] is None
    assert "finished after_upload left owed" in daemon.log_text()


def test_second_daemon_on_the_same_state_dir_exits_3(daemon_factory: DaemonFactory) -> None:
    first = daemon_factory().start()
    first.wait_ready()
    second = first.cli("run", timeout=30)
    assert second.returncode == 3
    assert "already uses the state dir" in second.stderr
    status = first.cli_status()
    assert status["daemon"]["running"] is True
    assert status["daemon"]["pid"] == first.proc.pid if first.proc else False


def test_sigterm_stops_cleanly(daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory().start()
    daemon.wait_ready()
    assert daemon.kill(signal.SIGTERM) == 0
    assert daemon.status()["daemon"]["running"] is False


def test_sigterm_to_a_once_run_with_work_left_exits_1(daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory(settle_seconds=600)
    write_video(daemon.watch / "a.mp4", 10_000)
    daemon.start("--once")
    daemon.wait_ready()
    assert daemon.kill(signal.SIGTERM) == 1  # not "all done": a script must not move on
    assert daemon.status()["counts"]["settling"] == 1
    assert "stopped before every file was handled" in daemon.log_text()


def test_once_says_when_a_watch_folder_does_not_exist(
    daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    daemon = daemon_factory()
    missing = tmp_path / "typo"
    assert daemon.start("--once", "--watch", str(missing)).wait_exit() == 0  # nothing to do
    assert "watch folder does not exist" in daemon.log_text()
    assert str(missing) in daemon.log_text()


def test_missing_api_key_is_a_config_error(daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory()
    del daemon.env["MAVI_API_KEY"]
    result = daemon.cli("run", "--once")
    assert result.returncode == 2
    assert "set MAVI_API_KEY or api_key_file" in result.stderr


def test_once_with_a_rejected_key_pauses_and_exits_1(
    fake: FakeMavi, daemon_factory: DaemonFactory
) -> None:
    daemon = daemon_factory()
    write_video(daemon.watch / "a.mp4", 1000)
    fake.set_api_key("a-different-key")
    assert daemon.start("--once").wait_exit() == 1
    status = daemon.status()
    assert status["paused"]["reason"] == "401 Unauthorized: check MAVI_API_KEY"
    assert status["counts"]["queued"] == 1 and status["counts"]["failed"] == 0
    assert "uploads paused" in daemon.log_text()


def test_enqueue_skips_the_settle_wait(fake: FakeMavi, daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory(settle_seconds=3600)
    daemon.start()
    daemon.wait_ready()
    clip = write_video(daemon.watch / "urgent.mp4", 5000)
    result = daemon.cli("enqueue", str(clip))
    assert result.returncode == 0, result.stderr
    wait_for(lambda: done_count(daemon) == 1, what="urgent.mp4 done without settling")
    assert fake.received_sha256s() == [sha256_of(clip)]


def test_status_shows_uploads_in_flight_with_progress(
    fake: FakeMavi, daemon_factory: DaemonFactory
) -> None:
    daemon = daemon_factory(bandwidth_limit="4M")
    daemon.start()
    daemon.wait_ready()
    big = write_video(daemon.watch / "interview.mov", 24_000_000)

    def moving() -> dict[str, object] | None:
        uploads = daemon.status()["uploads"]
        return uploads[0] if uploads and uploads[0]["speed_bytes_per_second"] else None

    upload = wait_for(moving, what="progress with a speed")
    assert upload["path"] == str(big) and upload["size"] == 24_000_000
    assert 0 < upload["percent"] < 100
    assert upload["eta_seconds"] is not None
    # Speed is measured by the worker: the bandwidth limit caps it (with a little slack).
    assert upload["speed_bytes_per_second"] <= 4_000_000 * 1.3
    text = daemon.cli("status").stdout
    assert "uploading now:" in text and "interview.mov" in text
    wait_for(lambda: done_count(daemon) == 1, timeout=30, what="big upload done")
    assert daemon.status()["uploads"] == []


def test_enqueue_wait_follows_the_file_until_done(
    fake: FakeMavi, daemon_factory: DaemonFactory
) -> None:
    daemon = daemon_factory(settle_seconds=3600)
    clip = write_video(daemon.watch / "now.mp4", 5000)
    alone = daemon.cli("enqueue", "--wait", str(clip))
    assert alone.returncode == 1 and "no daemon is running" in alone.stderr
    daemon.start()
    daemon.wait_ready()
    result = daemon.cli("enqueue", "--wait", str(clip), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("done #")
    lines = result.stdout.splitlines()
    assert len(lines) == len(set(lines)), result.stdout  # the follower repeats no enqueue line
    assert fake.received_sha256s() == [sha256_of(clip)]


def test_commands_refused_by_a_running_daemon_leave_its_journal_unmigrated(
    daemon_factory: DaemonFactory,
) -> None:
    daemon = daemon_factory()
    daemon.state_dir.mkdir(mode=0o700)
    db = daemon.state_dir / DB_NAME
    conn = sqlite3.connect(db)
    for version in (1, 2):
        for statement in schema._split(schema._MIGRATIONS[version]):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    video = write_video(daemon.watch / "a.mp4", 1000)
    holder = StateDirLock(daemon.state_dir)  # stands for an older daemon still running
    holder.acquire()
    try:
        refused = daemon.cli("run", "--once", timeout=30)
        assert refused.returncode == 3, refused.stderr
        for command in (["enqueue", str(video)], ["retry", "1"], ["forget", "1"]):
            writer = daemon.cli(*command, timeout=30)
            assert writer.returncode == 1, (command, writer.stderr)
            assert "restart the daemon with this version" in writer.stderr
    finally:
        holder.release()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2  # untouched
    conn.close()
    queued = daemon.cli("enqueue", str(video), timeout=30)  # no daemon: it may upgrade now
    assert queued.returncode == 0, queued.stderr
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    conn.close()
