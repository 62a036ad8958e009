"""SIGHUP reloads the config in a running daemon without dropping work."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

from conftest import API_KEY, DaemonProcess, sha256_of, wait_for, write_video
from fakemavi import FakeMavi

DaemonFactory = Callable[..., DaemonProcess]


def hup(daemon: DaemonProcess) -> None:
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)


def test_sighup_adds_a_watch_folder(
    fake: FakeMavi, daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    daemon = daemon_factory()
    daemon.start()
    daemon.wait_ready()
    second = tmp_path / "second"
    second.mkdir()
    early = write_video(second / "already-there.mp4", 3000)
    with open(daemon.config_path, "a") as config:
        config.write(f"[[watch]]\npath = {json.dumps(str(second))}\n")
    hup(daemon)
    wait_for(lambda: "config reloaded" in daemon.log_text(), what="reload logged")
    late = write_video(second / "new.mp4", 4000)
    wait_for(lambda: daemon.status()["counts"]["done"] == 2, what="both files done")
    assert sorted(fake.received_sha256s()) == sorted([sha256_of(early), sha256_of(late)])


def test_a_broken_config_on_sighup_keeps_the_running_one(
    fake: FakeMavi, daemon_factory: DaemonFactory
) -> None:
    daemon = daemon_factory()
    daemon.start()
    daemon.wait_ready()
    good = daemon.config_path.read_text()
    daemon.config_path.write_text(good + "concurrency = 'lots'\n")
    hup(daemon)
    wait_for(lambda: "config not reloaded" in daemon.log_text(), what="reload refused")
    clip = write_video(daemon.watch / "still-works.mp4", 2000)
    # `status` would refuse the broken file too: watch the server instead.
    wait_for(lambda: '"state": "done"' in daemon.log_text(), what="upload after bad reload")
    assert fake.received_sha256s() == [sha256_of(clip)]
    assert daemon.proc is not None and daemon.proc.poll() is None


def test_sighup_with_a_fixed_key_file_lifts_the_pause(
    fake: FakeMavi, daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_text("revoked-key-000000\n")
    key_file.chmod(0o600)
    daemon = daemon_factory(api_key_file=str(key_file))
    del daemon.env["MAVI_API_KEY"]
    clip = write_video(daemon.watch / "a.mp4", 5000)
    daemon.start()
    wait_for(lambda: daemon.status()["paused"] is not None, what="paused on 401")
    assert daemon.status()["counts"]["failed"] == 0
    key_file.write_text(API_KEY + "\n")
    hup(daemon)
    wait_for(lambda: daemon.status()["counts"]["done"] == 1, what="upload after the key fix")
    assert daemon.status()["paused"] is None
    assert fake.received_sha256s() == [sha256_of(clip)]
    log = daemon.log_text()
    assert API_KEY not in log and "revoked-key-000000" not in log
