"""Storage that takes the whole body and then takes its time to answer (the fake "hold" fault:
the answer waits until the test releases it, no sleeps)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import DaemonProcess, logged, wait_for, write_video
from fakemavi import FakeMavi, Fault
from mavi_uploader.journal.sqlite.store import Journal

DaemonFactory = Callable[..., DaemonProcess]


def sent_and_held(
    fake: FakeMavi, daemon_factory: DaemonFactory, name: str, size: int
) -> tuple[DaemonProcess, Path]:
    """A running daemon whose upload of a new file storage took whole but holds the answer to."""
    fake.inject("storage", Fault("hold"))
    daemon = daemon_factory()
    daemon.start()
    daemon.wait_ready()
    clip = write_video(daemon.watch / name, size)
    wait_for(lambda: fake.holding == 1, what="storage holding its answer after the whole body")
    return daemon, clip


def test_sigterm_cuts_the_wait_for_storage_and_the_next_run_finishes_the_file(
    fake: FakeMavi, daemon_factory: DaemonFactory
) -> None:
    daemon, clip = sent_and_held(fake, daemon_factory, "interview.mp4", 300_000)

    started = time.monotonic()
    assert daemon.kill(signal.SIGTERM) == 0  # kill() gives up after 30 s: TimeoutStopSec
    assert time.monotonic() - started < 5, "a warm stop waited for storage to answer"

    (row,) = daemon.files()
    assert row["state"] == "queued", row
    assert logged(daemon, event="transition", state="queued", reason="daemon stopping; will resume")
    journal = Journal.open(daemon.state_dir)
    try:
        kept = journal.get(row["id"])
    finally:
        journal.close()
    assert kept is not None and kept.signed_url and kept.asset_id == row["asset_id"]

    fake.release_held()  # storage did take the bytes: the next run finds them there
    assert daemon.start("--once").wait_exit() == 0, daemon.log_text()[-2000:]
    (done,) = daemon.files()
    assert done["state"] == "done" and done["asset_id"] == row["asset_id"]
    assert len(fake.assets) == 1  # the journaled URL was used again: no second asset
    assert [u.filename for u in fake.completed] == [clip.name]


def test_status_shows_a_small_file_fully_sent_while_storage_answers(
    fake: FakeMavi, daemon_factory: DaemonFactory
) -> None:
    daemon, clip = sent_and_held(fake, daemon_factory, "small.mp4", 4_100)

    def sent_in_full() -> dict[str, Any] | None:
        uploads = daemon.status()["uploads"]
        return uploads[0] if uploads and uploads[0]["bytes_sent"] == 4_100 else None

    upload = wait_for(sent_in_full, what="status showing the bytes sent")
    assert upload["path"] == str(clip) and upload["percent"] == 100.0
    text = daemon.cli("status").stdout
    assert "100%" in text and "4.1 KB / 4.1 KB" in text, text
    fake.release_held()
    wait_for(lambda: daemon.status()["counts"]["done"] == 1, what="small.mp4 done")
