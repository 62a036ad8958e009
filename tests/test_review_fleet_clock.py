"""Review: leases are judged on the host's wall clock plus an offset measured at each heartbeat,
so a host whose clock is stepped (NTP, an admin) takes a live host's upload before its next beat.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from conftest import write_video
from mavi_uploader.core.records import Observation, State
from mavi_uploader.journal import Fleet, open_journal


def test_a_host_whose_clock_steps_forward_takes_no_live_hosts_upload(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    nas = tmp_path / "nas"
    nas.mkdir()
    a = open_journal(tmp_path / "a", fleet=Fleet(pg_url, "a", {"drop": str(nas)}))
    b = open_journal(tmp_path / "b", fleet=Fleet(pg_url, "b", {"drop": str(nas)}))
    try:
        a.heartbeat(os.getpid())
        b.heartbeat(os.getpid())
        clip = write_video(nas / "clip.mp4", 1000)
        st = clip.stat()
        b.enqueue(Observation(str(clip), str(nas), st.st_size, st.st_mtime_ns), "test")
        held = b.claim("b-worker", 900.0)  # b uploads it, lease 15 minutes, b is beating
        assert held is not None and held.state is State.UPLOADING
        # Host a's wall clock is stepped forward an hour (the database's is not).
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + 3600.0)
        taken = a.claim("a-worker", 900.0)
        assert taken is None, f"host a took b's live upload: {a.history(held.id)[-1].reason}"
    finally:
        a.close()
        b.close()
