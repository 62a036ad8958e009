"""The daemon's timers as settings: the hidden `[timers]` table, checked like every config key."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Clock
from fakemavi import FakeMavi, Fault
from mavi_uploader.config import settings
from mavi_uploader.config.model import Config
from mavi_uploader.config.settings import ConfigError, load_config
from mavi_uploader.config.timers import TIMER_NAMES, Timers
from mavi_uploader.core.records import State
from mavi_uploader.journal.sqlite.store import Journal
from mavi_uploader.upload.pause import PauseGate
from mavi_uploader.upload.worker import Worker, WorkerSettings
from rig import Rig, make_rig

README = Path(__file__).resolve().parent.parent / "README.md"


def load(tmp_path: Path, text: str) -> Config:
    config_file = tmp_path / "config.toml"
    config_file.write_text(text)
    return load_config(config_path=str(config_file), env={}, require_api_key=False)


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return str(info.value)


def test_without_a_timers_table_every_timer_has_its_default(tmp_path: Path) -> None:
    assert load(tmp_path, "concurrency = 1\n").timers == Timers()
    assert Timers().once_unreachable == 120.0 and Timers().pause_probe_every == 60.0


def test_a_timers_table_sets_the_named_timers_and_keeps_the_others(tmp_path: Path) -> None:
    timers = load(tmp_path, "[timers]\nwatch_retry = 0.5\nonce_unreachable = 3\n").timers
    assert timers == dataclasses.replace(Timers(), watch_retry=0.5, once_unreachable=3.0)
    assert isinstance(timers.once_unreachable, float)


def test_an_inline_timers_table_before_the_watches_works_too(tmp_path: Path) -> None:
    config = load(tmp_path, f'timers = {{ tick = 0.1 }}\n[[watch]]\npath = "{tmp_path}"\n')
    assert config.timers.tick == 0.1 and len(config.watches) == 1


def test_every_timer_can_be_set(tmp_path: Path) -> None:
    wanted = {name: 999.5 if name == "lease" else n + 0.5 for n, name in enumerate(TIMER_NAMES)}
    lines = "".join(f"{name} = {value}\n" for name, value in wanted.items())
    timers = load(tmp_path, "[timers]\n" + lines).timers
    assert dataclasses.asdict(timers) == wanted


def test_an_unknown_timer_names_the_table_and_the_closest_key(tmp_path: Path) -> None:
    msg = error(tmp_path, "[timers]\nwatch_rety = 0.5\n")
    assert msg.endswith("unknown key watch_rety in [timers]: did you mean watch_retry?"), msg
    assert str(tmp_path / "config.toml") in msg


@pytest.mark.parametrize("value", ["0", "-1.0", "true", '"5"', "inf", "nan"])
def test_a_timer_must_be_a_positive_number_of_seconds(tmp_path: Path, value: str) -> None:
    msg = error(tmp_path, f"[timers]\nreport_every = {value}\n")
    assert "[timers] report_every = " in msg and "expected seconds > 0" in msg, msg


def test_timers_must_be_a_table(tmp_path: Path) -> None:
    msg = error(tmp_path, "timers = 5\n")
    assert "timers = 5 is not valid: expected a table" in msg and "[timers]" in msg


def test_a_lease_no_longer_than_its_renewal_is_refused(tmp_path: Path) -> None:
    msg = error(tmp_path, "[timers]\nlease = 2.0\n")
    assert "lease = 2 is not valid: it must be longer than progress_every (2)" in msg


def test_the_hidden_key_is_never_offered_in_a_hint(tmp_path: Path) -> None:
    msg = error(tmp_path, "timer = 1\n")
    assert "unknown key timer" in msg and "timers" not in msg, msg


def test_hidden_keys_stay_out_of_the_readme_and_the_documented_keys() -> None:
    assert set(settings._HIDDEN_KEYS).isdisjoint(settings._TOP_KEYS)  # what test_readme checks
    text = README.read_text()
    for key in (*settings._HIDDEN_KEYS, *TIMER_NAMES):
        assert f"`{key}`" not in text and f"\n{key} =" not in text, key


# ---- a timer at work: the pause gate's probes (the e2e test shortens it to 1 s) ---------------


@pytest.mark.parametrize("interval", [None, 1.0], ids=["default", "set"])
def test_a_paused_gate_lets_one_probe_through_per_interval(
    tmp_path: Path, interval: float | None
) -> None:
    clock = Clock(1000.0)
    journal = Journal.open(tmp_path / "state")
    try:
        if interval is None:
            gate, every = PauseGate(journal, clock=clock), 60.0  # the contract: once a minute
        else:
            gate, every = PauseGate(journal, clock=clock, probe_interval=interval), interval
        gate.trip("402 Payment Required: top up the balance")
        assert not gate.admit()
        clock.now += every - 0.01
        assert not gate.admit()
        clock.now += 0.01
        assert gate.admit()  # the probe
        assert not gate.admit()  # one per interval, however many workers ask
        gate.trip("402 Payment Required: top up the balance")  # the probe was refused too
        clock.now += every
        assert gate.admit() and not gate.admit()
    finally:
        journal.close()


# ---- the backoffs start from their settings ---------------------------------------------------


@pytest.fixture
def rig(tmp_path: Path, fake: FakeMavi) -> Iterator[Rig]:
    yield from make_rig(tmp_path, fake)


def worker(rig: Rig, retry_first: float = 1.0, confirm_first: float = 1.0) -> Worker:
    return Worker(
        "w1", rig.journal, rig.client, rig.gate, WorkerSettings(), rig.stop,
        clock=rig.clock, rng=random.Random(0),
        retry_first=retry_first, confirm_first=confirm_first,
    )  # fmt: skip


def test_retries_back_off_from_retry_first_doubling(rig: Rig) -> None:
    rig.fake.inject("sign", Fault("status", 500), times=2)
    rec = rig.queue("a.mp4")
    quick = worker(rig, retry_first=0.2)
    for wait in (0.2, 0.4):  # jittered between half and all of it
        quick.run_once()
        row = rig.journal.get(rec.id)
        assert row is not None and row.state is State.QUEUED and row.next_attempt_at
        assert wait / 2 <= row.next_attempt_at - rig.clock.now <= wait
        rig.clock.now = row.next_attempt_at
    quick.run_once()
    done = rig.journal.get(rec.id)
    assert done is not None and done.state is State.DONE


def test_confirmation_polls_back_off_from_confirm_first(rig: Rig) -> None:
    rig.fake.inject("metadata", Fault("status", 404))
    rec = rig.queue("a.mp4")
    worker(rig, confirm_first=0.2).run_once()
    row = rig.journal.get(rec.id)
    assert row is not None and row.state is State.CONFIRMING and row.next_attempt_at
    assert 0.1 <= row.next_attempt_at - rig.clock.now <= 0.2
