"""The state store misbehaving under a running daemon: disk full, unwritable, corrupt."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import DaemonProcess, sha256_of, wait_for, write_video
from fakemavi import FakeMavi

DaemonFactory = Callable[..., DaemonProcess]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs: a disk we can fill without filling the machine's.

    huge=never because a tmpfs that backs files with 2 MiB huge pages (the kernel's
    shmem_enabled setting varies by machine) fills up with the journal, its WAL and
    its shm file alone, before the test has filled anything.
    """
    mount = tmp_path / "smalldisk"
    mount.mkdir()
    errors = []
    for options in ("size=16m,mode=0700,huge=never", "size=16m,mode=0700"):
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode == 0:
            break
        errors.append(done.stderr.strip())
    else:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {errors}")
    # Created while there is room: opening a new file on a full disk can itself fail.
    (mount / "filler").touch()
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Append to the filler until ENOSPC; returns it (delete it to free the disk)."""
    filler = disk / "filler"
    used = {str(path.relative_to(disk)): path.stat().st_size for path in disk.rglob("*")}
    assert shutil.disk_usage(disk).free > 1 << 20, f"full before filling: {used}"
    with open(filler, "ab", buffering=0) as fileobj:
        try:
            while True:
                fileobj.write(b"\0" * 65536)
        except OSError:
            pass
    assert shutil.disk_usage(disk).free < 65536, shutil.disk_usage(disk)
    return filler


def test_disk_full_during_commits_loses_nothing(
    fake: FakeMavi, daemon_factory: DaemonFactory, small_disk: Path
) -> None:
    daemon = daemon_factory()
    daemon.state_dir = small_disk / "state"
    daemon.env["MAVI_UPLOADER_STATE_DIR"] = str(daemon.state_dir)
    daemon.start()
    daemon.wait_ready()
    first = write_video(daemon.watch / "before.mp4", 20_000)
    wait_for(lambda: len(fake.completed) == 1, what="first upload")
    filler = fill(small_disk)
    clips = [write_video(daemon.watch / f"during{n}.mp4", 10_000 + n) for n in range(5)]
    wait_for(lambda: "disk is full" in daemon.log_text(), what="the daemon hitting the full disk")
    assert daemon.proc is not None and daemon.proc.poll() is None  # still running
    os.unlink(filler)
    wait_for(lambda: len(fake.completed) == 6, timeout=40, what="all files after space returns")
    wait_for(lambda: daemon.status()["counts"]["done"] == 6, what="journal caught up")
    assert sorted(fake.received_sha256s()) == sorted(sha256_of(p) for p in [first, *clips])
    assert daemon.status()["counts"]["uploading"] == 0


def test_corrupt_journal_refuses_to_start_and_names_the_file(
    daemon_factory: DaemonFactory,
) -> None:
    daemon = daemon_factory()
    daemon.state_dir.mkdir(mode=0o700)
    journal = daemon.state_dir / "journal.sqlite3"
    journal.write_bytes(b"definitely not SQLite" * 500)
    result = daemon.cli("run", "--once")
    assert result.returncode == 1
    assert str(journal) in result.stderr
    assert "will not overwrite" in result.stderr
    for report in (["status"], ["status", "--json"], ["list"], ["history", "1"]):
        result = daemon.cli(*report)
        assert result.returncode == 1, (report, result.stderr)
        assert str(journal) in result.stderr and "Traceback" not in result.stderr
    assert journal.read_bytes() == b"definitely not SQLite" * 500


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder the unprivileged user can enter (pytest's tmp_path is root-only 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="mavi-nobody-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def as_nobody(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv is not installed: cannot drop root to test permissions")
    return subprocess.run(
        [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_unwritable_state_dir_is_a_clear_error(
    daemon_factory: DaemonFactory, open_dir: Path
) -> None:
    daemon = daemon_factory(watch=open_dir / "watch")
    config = open_dir / "config.toml"
    config.write_text(daemon.config_path.read_text())
    config.chmod(0o644)
    root_only = open_dir / "root-only"
    root_only.mkdir(mode=0o755)  # owned by root: nobody cannot create the state dir in it
    env = {**daemon.env, "MAVI_UPLOADER_CONFIG": str(config),
           "MAVI_UPLOADER_STATE_DIR": str(root_only / "state")}  # fmt: skip
    result = as_nobody(daemon.command("run", "--once"), env)
    assert result.returncode == 1, result.stderr
    assert str(root_only / "state") in result.stderr
    assert "Permission denied" in result.stderr
    assert "MAVI_UPLOADER_STATE_DIR" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreadable_default_config_location_is_a_config_error(open_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAVI_")}
    env["HOME"] = "/root"  # a service user pointed at a home it may not enter
    env.pop("XDG_CONFIG_HOME", None)
    result = as_nobody([sys.executable, "-m", "mavi_uploader", "status"], env)
    assert result.returncode == 2, result.stderr
    assert "MAVI_UPLOADER_CONFIG" in result.stderr
    assert "Traceback" not in result.stderr
