"""Settling a share file in a fleet: a writer only one host can see holds every host back."""

from __future__ import annotations

from pathlib import Path

from conftest import Clock, write_video
from fleet_hosts import two_hosts_on_a_share
from mavi_uploader.core.records import Observation, State
from mavi_uploader.core.writers import Writer
from mavi_uploader.watch.settle import Settler
from test_settle import FakeProbe

SETTLE = 5.0


def test_a_writer_seen_on_one_host_keeps_a_share_file_settling_on_every_host(
    tmp_path: Path, pg_url: str
) -> None:
    clock = Clock()
    with two_hosts_on_a_share(tmp_path, pg_url, clock) as (nas, a, b):
        clip = write_video(nas / "clip.mp4", 1000)
        st = clip.stat()
        (rec,) = a.sight([Observation(str(clip), str(nas), st.st_size, st.st_mtime_ns)])
        writer_on_a = FakeProbe()
        writer_on_a.writers[str(clip)] = Writer("held open for writing by pid 7 (cam)", 7)
        settler_a = Settler(a, SETTLE, clock=clock, probe=writer_on_a)
        settler_b = Settler(b, SETTLE, clock=clock, probe=FakeProbe())  # sees no writer
        for _ in range(3):
            clock.now += SETTLE
            assert settler_a.tick() == 0  # a sees the writer first...
            assert settler_b.tick() == 0  # ...so b, which cannot, waits too
        row = b.get(rec.id)
        assert row is not None and row.state is State.SETTLING
        assert row.last_error == "held open for writing by pid 7 (cam)"
        del writer_on_a.writers[str(clip)]  # the writer closed it
        clock.now += SETTLE
        assert settler_b.tick() == 1
        done = b.get(rec.id)
        assert done is not None and done.state is State.QUEUED
        assert done.path == str(tmp_path / "b-mount" / "clip.mp4")
