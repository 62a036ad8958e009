"""The byte pace follows a bandwidth timetable: rates switch on the local clock, and a `pause`
window holds new uploads while confirmations go on (injected clocks: no DST, no waiting)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from conftest import Clock
from fakemavi import FakeMavi
from mavi_uploader.config.timetable import parse_bandwidth_limit
from mavi_uploader.core.records import State
from mavi_uploader.mavi.ratelimit import BandwidthLimiter
from mavi_uploader.upload.worker import Worker, WorkerSettings
from rig import Rig, make_rig

MON = datetime(2024, 1, 1)  # a Monday


class WallClock:
    """The local wall-clock time the limiter reads, moved by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def at(hhmm: str, day: int = 0) -> datetime:
    hours, minutes = hhmm.split(":")
    return MON + timedelta(days=day, hours=int(hours), minutes=int(minutes))


def limiter(table: str, wall: WallClock, clock: Clock | None = None) -> BandwidthLimiter:
    return BandwidthLimiter(parse_bandwidth_limit(table), clock=clock or Clock(0.0), now=wall)


def test_the_rate_switches_at_each_entry() -> None:
    wall = WallClock(at("08:30"))
    pace = limiter("08:00,1000 09:00,off 10:00,4000", wall)
    assert pace.reserve(500) == 0.0
    assert pace.reserve(500) == pytest.approx(0.5)  # 1000 B/s
    assert pace.chunk_size == 64 * 1024
    wall.now = at("09:00")
    assert pace.reserve(10**9) == 0.0  # off: unlimited, the bookings of 1000 B/s forgiven
    assert pace.chunk_size == 1024 * 1024
    wall.now = at("10:00")
    assert pace.reserve(4000) == 0.0
    assert pace.reserve(4000) == pytest.approx(1.0)  # 4000 B/s
    wall.now = at("07:59", day=1)  # the next morning, before 08:00: 10:00's rate wraps round
    assert pace.in_force().limit.label == "4000"
    assert pace.in_force().until == at("08:00", day=1)


def test_a_new_pace_starts_from_now_not_after_the_old_bookings() -> None:
    wall, clock = WallClock(at("08:59")), Clock(0.0)
    pace = limiter("08:00,1000 09:00,1M", wall, clock)
    assert pace.reserve(64 * 1024) == 0.0  # booked 65 s ahead at 1000 B/s
    wall.now = at("09:00")
    assert pace.reserve(1_000_000) == 0.0  # 1 MB/s from now: no 65 s wait
    assert pace.reserve(1_000_000) == pytest.approx(1.0)


def test_a_pause_window_holds_until_it_ends_and_keeps_the_pace_before_it() -> None:
    wall, clock = WallClock(at("09:30")), Clock(0.0)
    pace = limiter("08:00,1000 09:00,pause 10:00,off", wall, clock)
    assert pace.holding() and pace.held_for() == pytest.approx(1800.0)
    assert pace.reserve(500) == 0.0  # an upload that started before 09:00 goes on
    assert pace.reserve(500) == pytest.approx(0.5)  # ... at 08:00's 1000 B/s
    wall.now = at("09:59")
    assert pace.held_for() == pytest.approx(60.0)
    wall.now = at("10:00")
    assert not pace.holding() and pace.held_for() is None


def test_a_pause_without_end_holds_for_ever() -> None:
    pace = limiter("pause", WallClock(at("12:00")))
    assert pace.holding() and pace.held_for() == math.inf
    pace.set_rate(parse_bandwidth_limit("2M"))  # SIGHUP with a new limit
    assert not pace.holding() and pace.in_force().pace == 2_000_000


def test_a_plain_rate_is_a_timetable_of_one_limit() -> None:
    pace = BandwidthLimiter(2_000_000, clock=Clock(0.0))
    assert pace.in_force().until is None and pace.chunk_size == 250_000
    pace.set_rate(0)
    assert pace.reserve(10**9) == 0.0 and not pace.holding()


# ---- the worker in a pause window ----------------------------------------------------------


@pytest.fixture
def rig(tmp_path: Path, fake: FakeMavi) -> Iterator[Rig]:
    yield from make_rig(tmp_path, fake)


def paced_worker(rig: Rig, pace: BandwidthLimiter) -> Worker:
    return Worker(
        "w1", rig.journal, rig.client, rig.gate, WorkerSettings(), rig.stop,
        clock=rig.clock, rng=random.Random(0), bandwidth=pace,
    )  # fmt: skip


def test_in_a_pause_window_confirmations_go_on_and_uploads_wait_for_its_end(rig: Rig) -> None:
    wall = WallClock(at("07:00"))
    worker = paced_worker(rig, limiter("08:00,pause 09:00,off", wall))
    rig.fake.set_metadata_script(["WAITING", "SUCCESS"], times=1)
    sent = rig.queue("sent.mp4")
    assert worker.run_once() is True
    confirming = rig.get(sent)
    assert confirming.state is State.CONFIRMING  # MAVI said WAITING: asked again later

    wall.now = at("08:30")  # the window opens
    held = rig.queue("held.mp4", seed=1)
    rig.clock.now = (confirming.next_attempt_at or 0) + 0.01
    assert worker.run_once() is True  # the confirmation falls due and is polled
    assert rig.get(sent).state is State.DONE
    assert worker.run_once() is False  # nothing else: the queued file is not claimed
    assert rig.get(held).state is State.QUEUED
    assert [e.to_state for e in rig.journal.history(held.id)][-1] is State.QUEUED
    assert len(rig.fake.completed) == 1

    wall.now = at("09:00")  # the window ends
    assert worker.run_once() is True
    assert rig.get(held).state is State.DONE
    assert len(rig.fake.completed) == 2
