"""Review: hosts that see a share file's mtime at different precision (the NAS's own ext4 in
nanoseconds, an SMB client in 100 ns units) never let it settle: each host's tick rewrites
the other's mtime and restarts the quiet period.
"""

from __future__ import annotations

import os
from pathlib import Path

from conftest import Clock, write_video
from mavi_uploader.core.records import Observation, State
from mavi_uploader.journal import Fleet, open_journal
from mavi_uploader.watch.settle import Settler
from test_settle import FakeProbe

SETTLE = 5.0


def _smb_stat(path: str) -> os.stat_result:
    st = os.stat(path)
    rounded = st.st_mtime_ns - st.st_mtime_ns % 100
    return _with_mtime(st, rounded)


def _with_mtime(st: os.stat_result, mtime_ns: int) -> os.stat_result:
    class Stat:
        st_size = st.st_size
        st_mode = st.st_mode
        st_mtime_ns = mtime_ns

    return Stat()  # type: ignore[return-value]


def test_a_share_file_settles_when_hosts_see_its_mtime_at_different_precision(
    tmp_path: Path, pg_url: str
) -> None:
    nas = tmp_path / "nas"
    nas.mkdir()
    clock = Clock()
    a = open_journal(tmp_path / "a", fleet=Fleet(pg_url, "a", {"drop": str(nas)}), clock=clock)
    b = open_journal(tmp_path / "b", fleet=Fleet(pg_url, "b", {"drop": str(nas)}), clock=clock)
    try:
        clip = write_video(nas / "clip.mp4", 1000)
        os.utime(clip, ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
        st = clip.stat()
        (rec,) = a.sight([Observation(str(clip), str(nas), st.st_size, st.st_mtime_ns)])
        settler_a = Settler(a, SETTLE, clock=clock, probe=FakeProbe())
        settler_b = Settler(b, SETTLE, clock=clock, probe=FakeProbe(), stat=_smb_stat)
        for _ in range(40):
            clock.now += SETTLE / 4
            settler_a.tick()
            settler_b.tick()
        row = a.get(rec.id)
        assert row is not None and row.state is State.QUEUED, "still settling after 50 s"
    finally:
        a.close()
        b.close()
