"""End to end, completion: a video is sent only when it is whole, and as soon as it is.

The daemon runs as a real subprocess against the fake MAVI server; the files are real-shaped
containers (tests/containers.py) written the way cameras and exporters write them.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import DaemonProcess, held_by, wait_for
from containers import mp4, mxf
from fakemavi import FakeMavi
from test_e2e_writers import HALF, WRITER, content, rows_of

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="inotify and the writer probe")


def settled_row(daemon: DaemonProcess, path: Path, says: str) -> dict[str, Any] | None:
    """The file's row once the daemon journaled `says` for it; fails at once if it moved on."""
    rows = rows_of(daemon, path)
    if not rows:
        return None
    if len(rows) > 1 or rows[-1]["state"] != "settling":
        pytest.fail(f"{path.name} left settling before it was whole: {rows}")
    return rows[-1] if (rows[-1]["last_error"] or "").startswith(says) else None


def done(daemon: DaemonProcess, count: int) -> bool:
    assert daemon.proc is not None and daemon.proc.poll() is None, "the daemon died"
    return bool(daemon.status()["counts"]["done"] == count)


def test_a_recording_whose_moov_comes_after_a_pause_is_uploaded_once_finished(
    fake: FakeMavi, daemon_factory: Callable[..., DaemonProcess]
) -> None:
    daemon = daemon_factory(settle_seconds=0.5)
    daemon.start()
    daemon.wait_ready()
    whole = mp4(b"\x07" * 200_000)
    mdat_at = whole.index(b"mdat") - 4
    moov_at = whole.index(b"moov") - 4
    clip = daemon.watch / "A001C003.mp4"
    # A camera: ftyp and an mdat of unknown size (0: "to the end") while it records...
    with clip.open("wb") as f:
        f.write(whole[:mdat_at] + bytes(4) + whole[mdat_at + 4 : moov_at])
    wait_for(
        lambda: settled_row(daemon, clip, "incomplete: MP4 has no moov box yet"),
        timeout=30,
        what="the daemon to wait for the moov (the pause outlasted settle_seconds)",
    )
    # ...then, the recording stopped, it patches the mdat's size and appends the moov.
    with clip.open("r+b") as f:
        f.seek(mdat_at)
        f.write(whole[mdat_at : mdat_at + 4])
        f.seek(moov_at)
        f.write(whole[moov_at:])
    wait_for(lambda: done(daemon, 1), timeout=30, what="the finished recording uploaded")
    expected = hashlib.sha256(whole).hexdigest()
    assert [(u.size, u.sha256) for u in fake.completed] == [(len(whole), expected)]


@linux_only
def test_a_writer_holding_an_mts_open_across_a_pause_gets_one_whole_upload(
    fake: FakeMavi, daemon_factory: Callable[..., DaemonProcess]
) -> None:
    # A transport stream has no container end to check: only the writer probe holds it back.
    daemon = daemon_factory(settle_seconds=0.5)
    daemon.start()
    daemon.wait_ready()
    target = daemon.watch / "00001.mts"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target), "mts", "append", str(HALF)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert writer.stdin is not None and writer.stdout is not None
    try:
        assert writer.stdout.readline() == "paused\n"
        row = wait_for(
            lambda: settled_row(daemon, target, "held open for writing"),
            timeout=30,
            what="the daemon to wait for the writer",
        )
        assert row["last_error"] == held_by(writer.pid)
        status = daemon.cli_status()
        assert [s["waiting_for"] for s in status["settling"]] == [held_by(writer.pid)]
        writer.stdin.write("go on\n")
        writer.stdin.flush()
        assert writer.stdout.readline() == "still in place\n"
        assert writer.wait(timeout=30) == 0
    finally:
        writer.kill()
        writer.wait()
        writer.stdin.close()
        writer.stdout.close()
    wait_for(lambda: done(daemon, 1), timeout=30, what="the stream uploaded")
    expected = hashlib.sha256(content("mts")).hexdigest()
    assert [(u.size, u.sha256) for u in fake.completed] == [(2 * HALF, expected)]


def test_a_truncated_mov_and_a_footerless_mxf_fail_as_incomplete_never_uploaded(
    fake: FakeMavi, daemon_factory: Callable[..., DaemonProcess]
) -> None:
    daemon = daemon_factory(settle_seconds=0.5, incomplete_grace_seconds=1.0)
    whole_mov = mp4(b"\x05" * 50_000, faststart=True)
    (daemon.watch / "cut.mov").write_bytes(whole_mov[: len(whole_mov) - 20_000])
    # A recorder cut short: header and essence written, no footer partition, no RIP.
    (daemon.watch / "open.mxf").write_bytes(mxf(footer=False, rip=False, footer_in_header=False))
    daemon.start()
    daemon.wait_ready()

    def both_failed() -> list[dict[str, Any]] | None:
        rows = sorted(daemon.files(), key=lambda r: str(r["path"]))
        return rows if [r["state"] for r in rows] == ["failed", "failed"] else None

    cut, footerless = wait_for(both_failed, timeout=30, what="both files failed")
    assert cut["last_error"].startswith("incomplete: MOV")
    assert footerless["last_error"].startswith("incomplete: MXF")
    assert fake.completed == []
    assert [c for c in fake.calls if c.endpoint != "other"] == []  # not even signed
    history = daemon.cli("history", str(daemon.watch / "cut.mov")).stdout
    assert "never uploaded" in history


@linux_only
def test_a_closed_complete_mp4_goes_out_without_waiting_out_settle_seconds(
    fake: FakeMavi, daemon_factory: Callable[..., DaemonProcess]
) -> None:
    settle = 30.0
    daemon = daemon_factory(settle_seconds=settle)
    daemon.start()
    daemon.wait_ready()
    whole = mp4(b"\x03" * 100_000)
    with (daemon.watch / "export.mp4").open("wb") as f:  # an editor's export, then close()
        f.write(whole)
    closed = time.monotonic()
    wait_for(lambda: done(daemon, 1), timeout=settle - 5, what="the export uploaded")
    uploaded = fake.completed[0].completed_at - closed
    assert uploaded < settle / 2, f"uploaded {uploaded:.1f}s after close: the settle wait"
    (row,) = daemon.files()
    assert row["sha256"] == hashlib.sha256(whole).hexdigest()
    history = daemon.cli("history", str(daemon.watch / "export.mp4")).stdout
    assert "closed by its writer" in history
