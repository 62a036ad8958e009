"""`run --once` ends whatever the network does: a cron job or a script must never hang."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import API_KEY, DaemonProcess, exit_code_within, write_video
from fakemavi import FakeMavi
from mavi_uploader.config.settings import load_config
from mavi_uploader.journal.sqlite.store import Journal
from mavi_uploader.service.daemon import Daemon
from silent_server import silent_server

DEAD = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused


def run_once(tmp_path: Path, api_base: str, timers: str = "", deadline: float = 60) -> int:
    """`run --once` in this process, on a thread with a deadline; it gives up on a silent MAVI
    after 3 s (the hidden setting [timers] once_unreachable, 120 s by default). `timers`: more
    lines for that table."""
    config_file = tmp_path / "config.toml"
    config_file.write_text(
        f"settle_seconds = 0.1\n[timers]\nonce_unreachable = 3.0\n{timers}"
        f'[[watch]]\npath = "{tmp_path / "watch"}"\n'
    )
    env = {
        "MAVI_API_KEY": API_KEY,
        "MAVI_API_BASE": api_base,
        "MAVI_UPLOADER_STATE_DIR": str(tmp_path / "state"),
    }
    config = load_config(config_path=str(config_file), env=env)
    daemon = Daemon(config, once=True)
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(daemon.run()), daemon=True)
    thread.start()
    thread.join(timeout=deadline)
    if thread.is_alive():
        daemon.stop.set()
        thread.join(timeout=30)
        pytest.fail("run --once did not end while MAVI was unreachable")
    return codes[0]


def states(tmp_path: Path) -> dict[str, int]:
    journal = Journal.open(tmp_path / "state")
    try:
        return {k: v for k, v in journal.counts().items() if v}
    finally:
        journal.close()


def test_unreachable_api_ends_the_run_with_1_and_fails_no_file(tmp_path: Path) -> None:
    write_video(tmp_path / "watch" / "a.mp4", 10_000)
    assert run_once(tmp_path, f"{DEAD}/serve/api/v2") == 1
    assert states(tmp_path) == {"queued": 1}  # the next run picks it up


def test_an_api_that_takes_connections_and_never_answers_ends_the_run_in_time(
    tmp_path: Path,
) -> None:
    """The silence counts from when the hanging request was sent: the run ends after
    once_unreachable (3 s), not after the read timeout (here 60 s) plus once_unreachable."""
    write_video(tmp_path / "watch" / "a.mp4", 10_000)
    with silent_server() as base:
        timeouts = "connect_timeout = 60.0\nread_timeout = 60.0\n"
        assert run_once(tmp_path, f"{base}/serve/api/v2", timeouts, deadline=15) == 1
    assert states(tmp_path) == {"queued": 1}


def test_unreachable_storage_ends_the_run_even_while_the_api_answers(
    tmp_path: Path,
) -> None:
    with FakeMavi(API_KEY, storage_origin=DEAD) as fake:
        write_video(tmp_path / "watch" / "a.mp4", 10_000)
        assert run_once(tmp_path, fake.api_base) == 1
        assert fake.completed == [] and len(fake.assets) >= 1
    assert states(tmp_path) == {"queued": 1}


def test_a_reachable_server_is_not_cut_short(tmp_path: Path, fake: FakeMavi) -> None:
    write_video(tmp_path / "watch" / "a.mp4", 10_000)
    assert run_once(tmp_path, fake.api_base) == 0
    assert states(tmp_path) == {"done": 1}


def test_mavi_answering_waiting_for_ever_ends_the_run_and_says_so(
    fake: FakeMavi, daemon_factory: Callable[..., DaemonProcess]
) -> None:
    fake.set_metadata_script(["WAITING"])
    # MAVI is asked again after 0.05 s, 0.1 s... (the hidden [timers] confirm_first; 1 s, 2 s...)
    timers = {"confirm_first": 0.05, "first_check": 0.05}
    daemon = daemon_factory(once_confirm_timeout_seconds=1.0, timers=timers)
    write_video(daemon.watch / "a.mp4", 10_000)
    daemon.start("--once")
    assert exit_code_within(daemon, 60) == 1
    assert "MAVI has not confirmed these files" in daemon.log_text()
    (row,) = daemon.files()
    assert row["state"] == "confirming" and row["mavi_status"] == "WAITING"
    listed = daemon.cli("list").stdout
    assert f"(MAVI reports WAITING since {row['mavi_status_since']})" in listed
    status = daemon.cli("status")
    assert "waiting for MAVI to confirm:" in status.stdout
    assert "a.mp4: MAVI reports WAITING since" in status.stdout
    history = daemon.cli("history", str(row["id"])).stdout
    assert "MAVI reports WAITING since" in history
    assert len(fake.completed) == 1  # sent once; the next run resumes confirming
