"""RateLimiter: per-endpoint slot spacing, penalties, stop, thread safety (injected clock)."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from conftest import wait_for
from mavi_uploader.mavi.ratelimit import JITTER_MARGIN, RateLimiter, Stopped


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class RecordingEvent(threading.Event):
    """A stop event that records wait() timeouts and answers without sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return self.is_set()


def test_reserve_spaces_slots_by_one_over_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, margin=1.0)
    delays = [limiter.reserve("sign") for _ in range(4)]
    assert delays == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_reserve_accounts_for_elapsed_time() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock, margin=1.0)  # one slot every 0.5 s
    assert limiter.reserve("sign") == 0.0
    assert limiter.reserve("sign") == pytest.approx(0.5)  # slot at +0.5
    clock.now += 0.3
    assert limiter.reserve("sign") == pytest.approx(0.7)  # slot at +1.0
    clock.now += 10  # idle: no burst of saved-up slots
    assert limiter.reserve("sign") == 0.0
    assert limiter.reserve("sign") == pytest.approx(0.5)


def test_endpoints_are_independent() -> None:
    limiter = RateLimiter(1, clock=FakeClock(), margin=1.0)
    assert limiter.reserve("sign") == 0.0
    assert limiter.reserve("sign") == pytest.approx(1.0)
    assert limiter.reserve("storage") == 0.0
    assert limiter.reserve("metadata") == 0.0
    assert limiter.reserve("storage") == pytest.approx(1.0)
    assert limiter.reserve("sign") == pytest.approx(2.0)


def test_penalize_pushes_the_next_slot_later() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, margin=1.0)
    assert limiter.reserve("sign") == 0.0
    limiter.penalize("sign", 5.0)
    assert limiter.reserve("sign") == pytest.approx(5.0)
    assert limiter.reserve("sign") == pytest.approx(5.1)
    assert limiter.reserve("storage") == 0.0  # other endpoints unaffected


def test_penalize_never_pulls_a_slot_earlier() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, clock=clock, margin=1.0)
    for _ in range(4):
        limiter.reserve("sign")  # next slot at +4
    limiter.penalize("sign", 0.5)
    assert limiter.reserve("sign") == pytest.approx(4.0)


def test_penalize_an_unused_endpoint() -> None:
    limiter = RateLimiter(1, clock=FakeClock(), margin=1.0)
    limiter.penalize("metadata", 3.0)
    assert limiter.reserve("metadata") == pytest.approx(3.0)


def test_rate_zero_never_waits() -> None:
    clock = FakeClock()
    limiter = RateLimiter(0, clock=clock, margin=1.0)
    assert [limiter.reserve("sign") for _ in range(100)] == [0.0] * 100


def test_rate_zero_still_honours_a_penalty() -> None:
    # "Unlimited" is our choice; a 429's Retry-After is the server's.
    clock = FakeClock()
    limiter = RateLimiter(0, clock=clock, margin=1.0)
    limiter.penalize("sign", 2.0)
    assert limiter.reserve("sign") == pytest.approx(2.0)
    clock.now += 2.0
    assert limiter.reserve("sign") == 0.0


def test_acquire_waits_on_the_stop_event_for_the_reserved_delay() -> None:
    stop = RecordingEvent()
    limiter = RateLimiter(4, clock=FakeClock(), stop=stop, margin=1.0)
    limiter.acquire("sign")
    limiter.acquire("sign")
    limiter.acquire("sign")
    # The first slot is free (no wait at all); later ones wait 0.25 s apart.
    assert stop.waits == pytest.approx([0.25, 0.5])


def test_acquire_raises_stopped_if_already_stopping_and_must_wait() -> None:
    stop = RecordingEvent()
    stop.set()
    limiter = RateLimiter(1, clock=FakeClock(), stop=stop, margin=1.0)
    limiter.acquire("sign")  # free slot: nothing to wait for
    with pytest.raises(Stopped):
        limiter.acquire("sign")


def test_acquire_raises_stopped_when_stop_is_set_during_the_wait() -> None:
    class SignallingEvent(threading.Event):
        def __init__(self) -> None:
            super().__init__()
            self.waiting = threading.Event()

        def wait(self, timeout: float | None = None) -> bool:
            self.waiting.set()
            return super().wait(timeout)

    stop = SignallingEvent()
    limiter = RateLimiter(1 / 60, stop=stop, margin=1.0)  # the second slot is a minute away
    limiter.acquire("sign")
    outcome: list[BaseException | None] = []

    def worker() -> None:
        try:
            limiter.acquire("sign")
            outcome.append(None)
        except Stopped as exc:
            outcome.append(exc)

    thread = threading.Thread(target=worker)
    started = time.monotonic()
    thread.start()
    assert stop.waiting.wait(5)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], Stopped)
    assert time.monotonic() - started < 5


def test_acquire_really_waits_with_the_real_clock() -> None:
    limiter = RateLimiter(20, margin=1.0)  # 50 ms apart
    started = time.monotonic()
    for _ in range(3):
        limiter.acquire("sign")
    assert time.monotonic() - started >= 0.09


class YieldingName(str):
    """An endpoint name whose hashing lets other threads run: between the limiter's read of
    the next slot and its write, so a missing lock shows up as duplicate slots every time."""

    __slots__ = ()

    def __hash__(self) -> int:
        time.sleep(0)  # a thread switch, not a timing sleep
        return str.__hash__(self)


def test_concurrent_reserves_get_distinct_spaced_slots() -> None:
    limiter = RateLimiter(10, clock=FakeClock(0.0), margin=1.0)
    endpoint = YieldingName("sign")
    barrier = threading.Barrier(4)
    delays: list[float] = []
    delays_lock = threading.Lock()

    def worker() -> None:
        barrier.wait(5)
        mine = [limiter.reserve(endpoint) for _ in range(10)]
        with delays_lock:
            delays.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(t.is_alive() for t in threads)

    assert len(delays) == 40
    ordered = sorted(delays)
    assert len({round(d, 6) for d in ordered}) == 40
    assert ordered[0] == 0.0
    assert all(b - a >= 0.1 - 1e-9 for a, b in itertools.pairwise(ordered))
    assert ordered[-1] == pytest.approx(3.9)


def test_default_spacing_leaves_a_margin_for_network_jitter() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1.0, clock=clock)
    limiter.reserve("sign")
    # Requests sent exactly 1 s apart can arrive less than 1 s apart: keep 10% spare.
    assert limiter.reserve("sign") == pytest.approx(1.0 * JITTER_MARGIN)
    assert JITTER_MARGIN >= 1.1


def test_a_penalty_voids_slots_reserved_before_it() -> None:
    """Workers already waiting for their slot when a 429 arrives must wait out Retry-After."""
    limiter = RateLimiter(10.0)  # a slot every 0.11 s
    limiter.acquire("sign")
    first_free = limiter._next_slot["sign"]
    returned: list[float] = []

    def second_worker() -> None:
        limiter.acquire("sign")
        returned.append(time.monotonic())

    waiter = threading.Thread(target=second_worker)
    waiter.start()
    wait_for(lambda: limiter._next_slot["sign"] > first_free, what="the waiter's reservation")
    penalized_at = time.monotonic()
    limiter.penalize("sign", 0.6)  # the 429 lands while the waiter sleeps towards its slot
    waiter.join(timeout=10)
    assert returned and returned[0] - penalized_at >= 0.59
