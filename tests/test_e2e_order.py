"""End to end: `upload_order` decides which queued file the daemon sends first.

The files are queued (`enqueue`, no daemon running) before `run --once` starts, so every
claim chooses among all of them whatever the machine's load: one worker, and the fake MAVI
records the order the bytes arrived in.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import DaemonProcess, sha256_of, write_video
from fakemavi import FakeMavi

DaemonFactory = Callable[..., DaemonProcess]
SECOND = 1_000_000_000


def video(watch: Path, name: str, size: int, mtime_s: int) -> Path:
    path = write_video(watch / name, size)
    os.utime(path, ns=(mtime_s * SECOND, mtime_s * SECOND))
    return path


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("smallest", ["small", "medium", "large"]),
        ("newest", ["medium", "large", "small"]),
        ("fifo", ["large", "small", "medium"]),
    ],
)
def test_the_daemon_sends_queued_files_in_the_configured_order(
    fake: FakeMavi, daemon_factory: DaemonFactory, order: str, expected: list[str]
) -> None:
    daemon = daemon_factory(concurrency=1, upload_order=order)
    # Queued in this order: the large file first, the small one after it.
    videos = {
        "large": video(daemon.watch, "large.mp4", 900_000, mtime_s=1_700_000_200),
        "small": video(daemon.watch, "small.mp4", 30_000, mtime_s=1_700_000_100),
        "medium": video(daemon.watch, "medium.mp4", 300_000, mtime_s=1_700_000_300),
    }
    queued = daemon.cli("enqueue", *(str(path) for path in videos.values()))
    assert queued.returncode == 0, queued.stderr
    rows = sorted(daemon.files(), key=lambda row: row["id"])
    assert [(row["path"], row["state"]) for row in rows] == [
        (str(path), "queued") for path in videos.values()
    ]

    assert daemon.start("--once").wait_exit(timeout=120) == 0, daemon.log_text()

    sent = fake.received_sha256s()
    assert sent == [sha256_of(videos[name]) for name in expected]


def test_an_unknown_order_is_a_config_error(daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory(upload_order="largest")
    result = daemon.cli("run", "--once")
    assert result.returncode == 2
    assert f"{daemon.config_path}: upload_order = " in result.stderr
    assert '"fifo", "newest" or "smallest"' in result.stderr
