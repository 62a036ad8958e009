"""A file skipped by a rule of the config is uploaded once the config no longer rejects it.

`enqueue` journals a refused file as `skipped` (outside every watch folder, an extension not
listed). When the config is fixed, the next rescan (at start, on SIGHUP, periodic) must see
the file as new, while a skip that judged the file itself (0 bytes) holds until it changes.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import DaemonProcess, sha256_of, wait_for, write_video
from fakemavi import FakeMavi

DaemonFactory = Callable[..., DaemonProcess]


def counts(daemon: DaemonProcess) -> dict[str, int]:
    result: dict[str, int] = daemon.status()["counts"]
    return result


@pytest.mark.parametrize("apply_fix", ["sighup", "restart"])
def test_skipped_files_are_uploaded_once_the_config_accepts_them(
    fake: FakeMavi, daemon_factory: DaemonFactory, tmp_path: Path, apply_fix: str
) -> None:
    daemon = daemon_factory()
    elsewhere = tmp_path / "elsewhere"
    outside = write_video(elsewhere / "outside.mp4", 3000)
    odd = write_video(daemon.watch / "clip.xyz", 4000)
    empty = daemon.watch / "empty.mp4"
    empty.write_bytes(b"")
    daemon.start()
    daemon.wait_ready()
    result = daemon.cli("enqueue", str(outside), str(odd))
    assert result.returncode == 1
    assert "outside every watch folder" in result.stderr and "'xyz'" in result.stderr
    wait_for(lambda: counts(daemon)["skipped"] == 3, what="two refused, one empty: skipped")

    # The fix: the folder is watched, the extension listed.
    config = daemon.config_path.read_text()
    extensions = json.dumps(["mp4", "xyz"])
    watch = f"[[watch]]\npath = {json.dumps(str(elsewhere))}\n"
    daemon.config_path.write_text(f"extensions = {extensions}\n{config}{watch}")
    if apply_fix == "sighup":
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGHUP)
    else:
        assert daemon.kill(signal.SIGTERM) == 0
        daemon.start()

    wait_for(lambda: counts(daemon)["done"] == 2, what="both skipped files uploaded")
    assert sorted(fake.received_sha256s()) == sorted([sha256_of(outside), sha256_of(odd)])
    # The empty file was judged on its content, which has not changed: one row, still skipped.
    rows = [r for r in daemon.files() if r["path"] == str(empty)]
    assert [r["state"] for r in rows] == ["skipped"]
    assert counts(daemon)["skipped"] == 3  # the two old rule skips stay as history
