"""Live progress bars: the renderer, and `run` on a real pseudo-terminal."""

from __future__ import annotations

import io
import os
import pty
import select
import signal
import subprocess
import time
from collections.abc import Callable

from rich.console import Console

from conftest import DaemonProcess, wait_for, write_video
from mavi_uploader.cli.progress import UploadBars

DaemonFactory = Callable[..., DaemonProcess]


def test_bars_show_name_percent_and_size() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with UploadBars(console) as bars:
        bars.update(
            [
                {
                    "id": 1,
                    "path": "/w/clip.mp4",
                    "size": 10_000_000,
                    "bytes_sent": 5_000_000,
                    "speed_bytes_per_second": 2_000_000,
                    "eta_seconds": 3,
                }
            ]
        )
        bars.log_stream.write("a log line\n")
        bars.update([])  # finished: the bar goes away
    text = out.getvalue()
    assert "clip.mp4" in text and "50%" in text and "5.0/10.0 MB" in text
    assert "2.0 MB/s" in text and "0:03 left" in text
    assert "a log line" in text


def test_run_on_a_terminal_draws_progress_bars(daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory(bandwidth_limit="4M")
    write_video(daemon.watch / "interview.mov", 16_000_000)
    main, child = pty.openpty()
    proc = subprocess.Popen(
        daemon.command("run"), env={**daemon.env, "TERM": "xterm", "COLUMNS": "120"},
        stdin=child, stdout=child, stderr=child,
    )  # fmt: skip
    os.close(child)
    screen = bytearray()

    def drawn() -> bool:
        while select.select([main], [], [], 0.05)[0]:
            try:
                screen.extend(os.read(main, 65536))
            except OSError:
                break
        return b"interview.mov" in screen and b"MB/s" in screen

    try:
        wait_for(drawn, timeout=30, what="a progress bar with a speed")
    finally:
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            drawn()
        proc.kill() if proc.poll() is None else None
        proc.wait(timeout=10)
        os.close(main)
