"""End to end: a writer that pauses with its file open longer than settle_seconds.

The daemon runs as a real subprocess against the fake MAVI server; the writer is a real
process. The test lets the writer go on only once it has seen the daemon wait for it.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import DaemonProcess, held_by, sha256_of, wait_for
from fakemavi import FakeMavi

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the writer probe needs Linux")

HALF = 3_000_000

# Writes HALF bytes, says "paused" and waits (file open) for a line on stdin, writes HALF more,
# says whether its file was still at its path just before closing it.
WRITER = textwrap.dedent(
    """
    import os, random, sys

    path, seed, preallocate = sys.argv[1], sys.argv[2], sys.argv[3] == "preallocate"
    half = int(sys.argv[4])
    rng = random.Random(seed)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)

    def write_all(data):
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]

    if preallocate:
        os.posix_fallocate(fd, 0, 2 * half)  # final size from the start, zeros for now
    write_all(rng.randbytes(half))
    print("paused", flush=True)
    sys.stdin.readline()
    write_all(rng.randbytes(half))
    try:
        in_place = os.path.samestat(os.stat(path), os.fstat(fd))
    except FileNotFoundError:
        in_place = False
    print("still in place" if in_place else "moved or deleted while open", flush=True)
    os.close(fd)
    """
)


def content(seed: str) -> bytes:
    rng = random.Random(seed)
    return rng.randbytes(HALF) + rng.randbytes(HALF)


def rows_of(daemon: DaemonProcess, path: Path) -> list[dict[str, Any]]:
    return [row for row in daemon.files() if row["path"] == str(path)]


def waiting_for_its_writer(daemon: DaemonProcess, path: Path) -> dict[str, Any] | None:
    """The row once the daemon says it waits for a writer; fails at once if it moved on."""
    rows = rows_of(daemon, path)
    if not rows:
        return None
    row = rows[-1]
    if len(rows) > 1 or row["state"] != "settling":
        pytest.fail(f"{path.name} left settling while its writer had it open: {rows}")
    return row if (row["last_error"] or "").startswith("held open for writing") else None


@pytest.mark.parametrize(
    ("after_upload", "preallocate"),
    [("keep", False), ("move", False), ("delete", False), ("keep", True), ("delete", True)],
    ids=["keep", "move", "delete", "keep-preallocated", "delete-preallocated"],
)
def test_a_writer_pausing_longer_than_settle_seconds_is_uploaded_once_whole(
    fake: FakeMavi,
    daemon_factory: Callable[..., DaemonProcess],
    tmp_path: Path,
    after_upload: str,
    preallocate: bool,
) -> None:
    done_dir = tmp_path / "uploaded"
    moves = {"done_dir": str(done_dir)} if after_upload == "move" else {}
    daemon = daemon_factory(settle_seconds=0.5, after_upload=after_upload, **moves)
    daemon.start()
    daemon.wait_ready()
    assert daemon.proc is not None
    target = daemon.watch / "recording.mp4"
    seed = f"{after_upload}-{preallocate}"
    how = "preallocate" if preallocate else "append"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target), seed, how, str(HALF)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert writer.stdin is not None and writer.stdout is not None
    try:
        assert writer.stdout.readline() == "paused\n"
        row = wait_for(
            lambda: waiting_for_its_writer(daemon, target),
            timeout=30,
            what="the daemon to wait for the writer",
        )
        assert row["last_error"] == held_by(writer.pid)
        # What a lease break sends the daemon: ignored, it must not end the daemon.
        os.kill(daemon.proc.pid, signal.SIGIO)
        writer.stdin.write("go on\n")
        writer.stdin.flush()
        assert writer.stdout.readline() == "still in place\n"
        assert writer.wait(timeout=30) == 0
    finally:
        writer.kill()
        writer.wait()
        writer.stdin.close()
        writer.stdout.close()

    expected = hashlib.sha256(content(seed)).hexdigest()

    def done() -> bool:
        assert daemon.proc is not None and daemon.proc.poll() is None, "the daemon died"
        return bool(daemon.status()["counts"]["done"] == 1)

    wait_for(done, timeout=30, what="recording done")
    assert [(u.size, u.sha256) for u in fake.completed] == [(2 * HALF, expected)]
    (row,) = rows_of(daemon, target)
    assert (row["state"], row["sha256"], row["size"]) == ("done", expected, 2 * HALF)
    if after_upload == "keep":
        assert sha256_of(target) == expected
    elif after_upload == "move":
        moved = done_dir / "recording.mp4"
        wait_for(moved.exists, what="the move to done_dir")
        assert sha256_of(moved) == expected and not target.exists()
    else:
        wait_for(lambda: not target.exists(), what="the delete after upload")
