"""End to end: copies dropped together, and MAVI answering late, cost one upload each."""

from __future__ import annotations

import os
from collections.abc import Callable

from conftest import DaemonProcess, exit_code_within, sha256_of, write_video
from fakemavi import FakeMavi, Fault

DaemonFactory = Callable[..., DaemonProcess]


def test_copies_and_hard_links_dropped_together_are_uploaded_once(
    fake: FakeMavi, daemon_factory: DaemonFactory
) -> None:
    daemon = daemon_factory(concurrency=2)
    original = write_video(daemon.watch / "a.mp4", 1_000_000)
    (daemon.watch / "b.mp4").write_bytes(original.read_bytes())
    os.link(original, daemon.watch / "c.mp4")
    daemon.start("--once")
    assert exit_code_within(daemon, 60) == 0, daemon.log_text()[-3000:]
    states = sorted(f["state"] for f in daemon.files())
    assert states == ["done", "duplicate", "duplicate"]
    assert [u.sha256 for u in fake.completed] == [sha256_of(original)]


def test_not_found_twice_after_the_upload_costs_no_second_upload(
    fake: FakeMavi, daemon_factory: DaemonFactory
) -> None:
    fake.inject("metadata", Fault("status", 404), times=2)
    daemon = daemon_factory(timers={"confirm_first": 0.05})  # polls after 0.05 s, 0.1 s...
    video = write_video(daemon.watch / "a.mp4", 3_000_000)
    daemon.start("--once")
    assert exit_code_within(daemon, 60) == 0, daemon.log_text()[-3000:]
    assert [u.sha256 for u in fake.completed] == [sha256_of(video)]
    (row,) = daemon.files()
    history = daemon.cli("history", str(row["id"])).stdout
    assert "does not know asset" in history


def test_a_copy_parked_behind_an_unconfirmed_twin_does_not_keep_run_once_going(
    fake: FakeMavi, daemon_factory: DaemonFactory
) -> None:
    fake.set_metadata_script(["WAITING"])
    daemon = daemon_factory(concurrency=2, once_confirm_timeout_seconds=1.0)
    original = write_video(daemon.watch / "a.mp4", 200_000)
    (daemon.watch / "b.mp4").write_bytes(original.read_bytes())
    daemon.start("--once")
    assert exit_code_within(daemon, 60) == 1, daemon.log_text()[-3000:]
    assert sorted(f["state"] for f in daemon.files()) == ["confirming", "queued"]
    assert len(fake.completed) == 1
    (parked,) = [f for f in daemon.files() if f["state"] == "queued"]
    events = daemon.cli("history", "--json", str(parked["id"])).stdout
    assert events.count("waiting for it") == 1  # parked once, not re-claimed every 15 s
