"""The pause in a fleet: a 401/402/403 on one host pauses every host, one probe per minute
for the whole fleet, and the pause lifts everywhere once a probe gets through."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Clock
from mavi_uploader.journal import Fleet, JournalStore, open_journal
from mavi_uploader.upload.pause import PauseGate

EVERY = 60.0
REASON = "401 Unauthorized: check MAVI_API_KEY"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def journals(pg_url: str, tmp_path: Path, clock: Clock) -> Iterator[list[JournalStore]]:
    opened = [
        open_journal(tmp_path / name, fleet=Fleet(url=pg_url, host_id=name), clock=clock)
        for name in ("a", "b", "c")
    ]
    yield opened
    for journal in opened:
        journal.close()


def gates(journals: list[JournalStore], clock: Clock) -> list[PauseGate]:
    return [
        PauseGate(j, clock=clock, probe_interval=EVERY, fleet=True, refresh_every=1.0)
        for j in journals
    ]


def test_a_pause_on_one_host_stops_every_host_and_one_probe_a_minute_serves_the_fleet(
    journals: list[JournalStore], clock: Clock
) -> None:
    a, b, c = gates(journals, clock)
    for gate in (a, b, c):
        assert gate.admit()  # running: everyone works
    a.trip(REASON)
    clock.now += 1.0  # the others read the fleet's pause at their next refresh
    probes = [gate.admit() for gate in (a, b, c)]
    assert b.reason == c.reason == REASON
    # The restart-style urgent probe is spent already (a tripped after admitting): no host
    # probes before the fleet's slot comes due.
    assert probes == [False, False, False]
    clock.now += EVERY
    probes = [gate.admit() for gate in (a, b, c) for _ in range(3)]
    assert probes.count(True) == 1  # one probe for the whole fleet, not one per host
    clock.now += EVERY / 2
    assert not any(gate.admit() for gate in (a, b, c))
    b.lift()  # b's probe got through
    clock.now += 1.0
    assert all(gate.admit() for gate in (a, b, c))
    assert a.reason is None and c.reason is None


def test_a_reset_probes_at_once_without_waiting_for_the_fleets_slot(
    journals: list[JournalStore], clock: Clock
) -> None:
    a, b, _ = gates(journals, clock)
    a.admit(), b.admit()
    a.trip(REASON)
    clock.now += EVERY
    assert a.admit()  # the fleet's probe, taken by a
    clock.now += 1.0
    assert not b.admit()  # the slot is a's for a minute
    b.reset()  # SIGHUP on b: its key may have been fixed
    assert b.admit()
    assert not b.admit()


def test_a_daemon_started_into_a_paused_fleet_probes_once_at_start(
    journals: list[JournalStore], clock: Clock
) -> None:
    journals[0].set_pause(REASON)
    late = PauseGate(journals[2], clock=clock, probe_interval=EVERY, fleet=True)
    assert late.reason == REASON
    assert late.admit()  # a restart may have fixed the key: try at once
    assert not late.admit()
