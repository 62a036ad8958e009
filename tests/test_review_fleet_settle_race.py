"""Review: a writer seen on one host does not reliably hold back the other hosts.

The docs say the host that sees a writer "restarts the quiet period at each tick (four per
settle_seconds)". The code probes (and so restarts the quiet period) only on a tick where the
quiet period has already run out; the other host's tick at that same moment may come first
and queue a file still open for writing on the first host.
"""

from __future__ import annotations

from pathlib import Path

from conftest import Clock, write_video
from fleet_hosts import two_hosts_on_a_share
from mavi_uploader.core.records import Observation, State
from mavi_uploader.core.writers import Writer
from mavi_uploader.watch.settle import Settler
from test_settle import FakeProbe

SETTLE = 5.0


def test_the_writer_host_holds_others_back_whatever_order_the_ticks_come_in(
    tmp_path: Path, pg_url: str
) -> None:
    clock = Clock()
    with two_hosts_on_a_share(tmp_path, pg_url, clock) as (nas, a, b):
        clip = write_video(nas / "clip.mts", 1000)
        st = clip.stat()
        (rec,) = a.sight([Observation(str(clip), str(nas), st.st_size, st.st_mtime_ns)])
        writer_on_a = FakeProbe()
        writer_on_a.writers[str(clip)] = Writer("held open for writing by pid 7 (cam)", 7)
        settler_a = Settler(a, SETTLE, clock=clock, probe=writer_on_a)
        settler_b = Settler(b, SETTLE, clock=clock, probe=FakeProbe())  # sees no writer
        # Both daemons' settle loops: tick, then wait min(1.0, SETTLE / 4) = 1 s; a tick's own
        # work takes 20 ms. Host b's loop happens to run 0.95 s after host a's (any phase in
        # the last 5 x 20 ms before a's tick does). 60 s of a camera paused with the file open.
        period = min(1.0, SETTLE / 4) + 0.02
        t0 = clock.now
        ticks = sorted(
            [(t0 + k * period, "a") for k in range(60)]
            + [(t0 + 0.95 + k * period, "b") for k in range(60)]
        )
        for at, host in ticks:
            clock.now = at
            (settler_a if host == "a" else settler_b).tick()
            row = a.get(rec.id)
            assert row is not None
            assert row.state is State.SETTLING, (
                f"host b queued the file at t+{at - t0:.2f}s while host a sees its writer"
            )
