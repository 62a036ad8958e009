"""Backoff: equal-jitter delays within [raw/2, raw], capped, Retry-After as a floor."""

from __future__ import annotations

import random

import pytest

from mavi_uploader.core.retry import CONFIRM_BACKOFF, UPLOAD_BACKOFF, Backoff


def raw_delay(backoff: Backoff, attempt: int) -> float:
    return min(backoff.cap, backoff.base * backoff.factor ** max(0, attempt - 1))


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 8])
def test_delay_is_between_half_and_all_of_the_raw_delay(attempt: int) -> None:
    backoff = Backoff(base=2.0, factor=2.0, cap=600.0)
    raw = 2.0 * 2.0 ** (attempt - 1)
    rng = random.Random(attempt)
    delays = [backoff.delay(attempt, rng) for _ in range(500)]
    assert all(raw / 2 <= d <= raw for d in delays)
    # The jitter really spreads: not stuck at one end of the range.
    assert min(delays) < raw * 0.6
    assert max(delays) > raw * 0.9


def test_delays_grow_exponentially() -> None:
    backoff = Backoff(base=1.0, factor=3.0, cap=10_000.0)
    assert [raw_delay(backoff, a) for a in (1, 2, 3, 4)] == [1.0, 3.0, 9.0, 27.0]
    rng = random.Random(0)
    for attempt, raw in [(1, 1.0), (2, 3.0), (3, 9.0), (4, 27.0)]:
        assert raw / 2 <= backoff.delay(attempt, rng) <= raw


@pytest.mark.parametrize("attempt", [10, 11, 50, 1000])
def test_delay_is_capped(attempt: int) -> None:
    backoff = Backoff(base=2.0, factor=2.0, cap=600.0)
    rng = random.Random(attempt)
    delays = [backoff.delay(attempt, rng) for _ in range(200)]
    assert all(300.0 <= d <= 600.0 for d in delays)


@pytest.mark.parametrize("attempt", [1025, 5000, 10**6])
def test_delay_stays_capped_after_very_many_attempts(attempt: int) -> None:
    delay = UPLOAD_BACKOFF.delay(attempt, random.Random(attempt))
    assert UPLOAD_BACKOFF.cap / 2 <= delay <= UPLOAD_BACKOFF.cap


@pytest.mark.parametrize("attempt", [0, -3])
def test_attempts_below_one_use_the_base(attempt: int) -> None:
    backoff = Backoff(base=4.0, factor=2.0, cap=600.0)
    rng = random.Random(1)
    assert all(2.0 <= backoff.delay(attempt, rng) <= 4.0 for _ in range(100))


def test_retry_after_is_a_floor() -> None:
    backoff = Backoff(base=2.0, factor=2.0, cap=600.0)
    assert backoff.delay(1, random.Random(3), retry_after=100.0) == 100.0
    # Beyond the cap too: the server's word beats our own ceiling.
    assert backoff.delay(30, random.Random(3), retry_after=900.0) == 900.0


def test_small_retry_after_does_not_shorten_the_backoff() -> None:
    backoff = Backoff(base=2.0, factor=2.0, cap=600.0)
    without = backoff.delay(5, random.Random(9))
    assert backoff.delay(5, random.Random(9), retry_after=0.5) == without
    assert backoff.delay(5, random.Random(9), retry_after=0.0) == without


def test_same_seed_same_delays() -> None:
    backoff = UPLOAD_BACKOFF
    first = [backoff.delay(a, rng) for rng in [random.Random(42)] for a in range(1, 12)]
    second = [backoff.delay(a, rng) for rng in [random.Random(42)] for a in range(1, 12)]
    other = [backoff.delay(a, rng) for rng in [random.Random(43)] for a in range(1, 12)]
    assert first == second
    assert first != other


def test_default_plans() -> None:
    rng = random.Random(5)
    assert 0.5 <= UPLOAD_BACKOFF.delay(1, rng) <= 1.0
    assert 150.0 <= UPLOAD_BACKOFF.delay(40, rng) <= 300.0
    assert 0.5 <= CONFIRM_BACKOFF.delay(1, rng) <= 1.0
    assert 30.0 <= CONFIRM_BACKOFF.delay(40, rng) <= 60.0


def test_backoff_is_an_immutable_value() -> None:
    backoff = Backoff()
    with pytest.raises(AttributeError):
        backoff.cap = 1.0  # type: ignore[misc]
    assert Backoff(1.0, 2.0, 3.0) == Backoff(base=1.0, factor=2.0, cap=3.0)
