"""End to end: a bandwidth timetable's `pause` window holds new uploads until it ends
(`mavi-uploader run` as a subprocess against the fake MAVI server)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from conftest import DaemonProcess, open_reports, sha256_of, wait_for, write_video
from fakemavi import FakeMavi
from mavi_uploader.core.records import State

DaemonFactory = Callable[..., DaemonProcess]
WINDOW = 10.0  # seconds of the pause window left when the test starts


def history(daemon: DaemonProcess, file_id: int) -> list[Any]:
    journal = open_reports(daemon.state_dir)
    assert journal is not None
    try:
        return journal.history(file_id)
    finally:
        journal.close()


def test_a_pause_window_holds_new_uploads_and_they_start_when_it_ends(
    fake: FakeMavi, daemon_factory: DaemonFactory
) -> None:
    # Timetable entries are whole minutes: the daemon reads its timetable on a clock shifted
    # (the hidden timetable_shift timer) so that the window's end, a whole minute on that
    # clock, comes WINDOW seconds from now.
    wall, mono, epoch = datetime.now(), time.monotonic(), time.time()
    end = (wall + timedelta(minutes=2)).replace(second=0, microsecond=0)
    shift = (end - wall).total_seconds() - WINDOW
    ends_mono, ends_epoch = mono + WINDOW, epoch + WINDOW
    table = f"{end - timedelta(minutes=30):%H:%M},pause {end:%H:%M},off"
    daemon = daemon_factory(
        bandwidth_limit=table, settle_seconds=0.2, timers={"timetable_shift": shift}
    )
    video = write_video(daemon.watch / "a.mp4", 300_000)
    daemon.start()

    def seen() -> list[dict[str, Any]]:
        return [f for f in daemon.files() if f["state"] != State.SETTLING.value]

    (row,) = wait_for(seen, timeout=60, what="the file settled")
    looked = time.monotonic()
    bandwidth = daemon.status()["bandwidth"]
    assert looked < ends_mono - 1.0, "the file settled too late to show the window holding it"
    assert row["state"] == State.QUEUED.value  # held: no worker claimed it
    assert bandwidth["limit"] == "pause" and bandwidth["bytes_per_second"] is None
    until = datetime.fromisoformat(bandwidth["until"]).timestamp()
    assert abs(until - ends_epoch) <= 1.0, (bandwidth, ends_epoch)
    assert not fake.calls_to("sign")

    wait_for(lambda: daemon.status()["counts"]["done"] == 1, timeout=60, what="the upload")
    assert fake.received_sha256s() == [sha256_of(video)]
    # No call to MAVI before the window's end, and the claim came after it.
    assert min(c.time for c in fake.calls_to("sign")) >= ends_mono - 0.05
    events = history(daemon, row["id"])
    (queued,) = [e for e in events if e.to_state is State.QUEUED]
    (claimed,) = [e for e in events if e.to_state is State.UPLOADING and "claimed" in e.reason]
    assert queued.at < ends_epoch - 1.0 and claimed.at >= ends_epoch - 0.05
    assert daemon.status()["bandwidth"]["limit"] == "off"
    log = daemon.log_text()
    assert log.index('"limit": "pause"') < log.index('"limit": "off"')


def test_a_once_run_in_a_pause_window_leaves_the_files_queued_and_exits_1(
    fake: FakeMavi, daemon_factory: DaemonFactory
) -> None:
    daemon = daemon_factory(bandwidth_limit="pause", settle_seconds=0.2)
    write_video(daemon.watch / "a.mp4", 100_000)
    assert daemon.start("--once").wait_exit() == 1
    assert [f["state"] for f in daemon.files()] == [State.QUEUED.value]
    assert not fake.calls_to("sign")
    assert "bandwidth_limit pauses new uploads" in daemon.log_text()
