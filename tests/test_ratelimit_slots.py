"""RateLimiter with a slot book of its own (`slots=`): what it asks the book, and how it waits
out a book that is out of reach (fleet mode: the database is away). Injected clock, no sleeps;
tests/test_fleet_slots.py runs the real book on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from mavi_uploader.mavi.ratelimit import (
    AWAY_BACKOFF,
    AWAY_BACKOFF_MAX,
    JITTER_MARGIN,
    LocalSlots,
    RateLimiter,
    Stopped,
)
from test_ratelimit import FakeClock, RecordingEvent


class Away(Exception):
    """The book's 'out of reach' error (the fleet's book raises JournalError)."""


class SharedBook(LocalSlots):
    """A book another host could share: records every call; `away` makes each call fail."""

    unavailable = (Away,)

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.away = False
        self.calls: list[tuple[str, str, float]] = []

    def _call(self, what: str, endpoint: str, value: float = 0.0) -> None:
        self.calls.append((what, endpoint, value))
        if self.away:
            raise Away("connection refused")

    def reserve(self, endpoint: str, interval: float) -> float:
        self._call("reserve", endpoint, interval)
        return super().reserve(endpoint, interval)

    def penalize(self, endpoint: str, seconds: float) -> None:
        self._call("penalize", endpoint, seconds)
        super().penalize(endpoint, seconds)

    def blocked_for(self, endpoint: str) -> float:
        self._call("blocked_for", endpoint)
        return super().blocked_for(endpoint)


class TickingEvent(RecordingEvent):
    """A stop event whose wait() moves the fake clock by the timeout, then runs `on_wait`."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.on_wait: Callable[[int], object] = lambda n: None

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        self.clock.now += timeout or 0.0
        self.on_wait(len(self.waits))
        return self.is_set()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def book(clock: FakeClock) -> SharedBook:
    return SharedBook(clock)


@pytest.fixture
def stop(clock: FakeClock) -> TickingEvent:
    return TickingEvent(clock)


def test_slots_are_booked_in_the_given_book_at_the_margin_interval(book: SharedBook) -> None:
    limiter = RateLimiter(2, slots=book)
    limiter.acquire("sign")
    limiter.acquire("metadata")
    interval = JITTER_MARGIN / 2
    assert book.calls == [("reserve", "sign", interval), ("reserve", "metadata", interval)]
    limiter.set_rate(4)
    assert limiter.reserve("sign") == pytest.approx(interval)  # booked before the change
    assert book.calls[-1] == ("reserve", "sign", JITTER_MARGIN / 4)


def test_only_a_slot_that_was_waited_for_asks_for_penalties(
    book: SharedBook, stop: TickingEvent
) -> None:
    limiter = RateLimiter(1, clock=clock, slots=book, stop=stop, margin=1.0)
    limiter.acquire("sign")  # free at once: one call
    limiter.acquire("sign")  # a second later: and was it voided meanwhile?
    assert [c[0] for c in book.calls] == ["reserve", "reserve", "blocked_for"]
    assert stop.waits == [1.0]


def test_rate_zero_never_asks_the_shared_book(
    book: SharedBook, stop: TickingEvent, clock: FakeClock
) -> None:
    limiter = RateLimiter(0, clock=clock, slots=book, stop=stop)
    for _ in range(5):
        limiter.acquire("sign")
    limiter.penalize("sign", 2.0)  # a 429's Retry-After still counts, in this process
    limiter.acquire("sign")
    assert book.calls == []
    assert stop.waits == [2.0]


def test_a_penalty_from_elsewhere_voids_a_slot_being_waited_for(
    book: SharedBook, stop: TickingEvent, clock: FakeClock
) -> None:
    limiter = RateLimiter(1, clock=clock, slots=book, stop=stop, margin=1.0)
    limiter.acquire("sign")
    # Another host gets a 429 while this one waits for its slot at +1 s.
    stop.on_wait = lambda n: book.penalize("sign", 5.0) if n == 1 else None
    started = clock.now
    limiter.acquire("sign")
    assert clock.now - started == pytest.approx(1.0 + 5.0)
    assert stop.waits == pytest.approx([1.0, 5.0])


def test_an_unreachable_book_hands_out_nothing_until_it_answers(
    book: SharedBook, stop: TickingEvent, clock: FakeClock
) -> None:
    limiter = RateLimiter(1, clock=clock, slots=book, stop=stop)
    book.away = True
    stop.on_wait = lambda n: setattr(book, "away", n < 8)
    with capture_logs() as logs:
        limiter.acquire("sign")
        limiter.acquire("metadata")
    # Eight attempts failed, the ninth got sign's slot; metadata's came at once.
    assert book.calls == [("reserve", "sign", 1.1)] * 9 + [("reserve", "metadata", 1.1)]
    backoffs = [min(AWAY_BACKOFF * 2**n, AWAY_BACKOFF_MAX) for n in range(8)]
    assert stop.waits == pytest.approx(backoffs)
    assert [e["event"] for e in logs] == [
        "rate slots out of reach: no API call until they are back",
        "rate slots reachable again",
    ]
    assert logs[0]["error"] == "connection refused"


def test_a_book_lost_during_the_wait_voids_the_slot(
    book: SharedBook, stop: TickingEvent, clock: FakeClock
) -> None:
    """Whether a penalty landed meanwhile cannot be known: take a new slot when it is back."""
    limiter = RateLimiter(1, clock=clock, slots=book, stop=stop, margin=1.0)
    limiter.acquire("sign")
    stop.on_wait = lambda n: setattr(book, "away", n < 3)
    started = clock.now
    limiter.acquire("sign")
    # reserve (slot at +1 s), wait, blocked_for fails; reserve fails; reserve: the next slot
    assert [c[0] for c in book.calls] == [
        "reserve", "reserve", "blocked_for", "reserve", "reserve", "blocked_for",
    ]  # fmt: skip
    assert stop.waits == pytest.approx([1.0, AWAY_BACKOFF, 2 * AWAY_BACKOFF, 0.85])
    assert clock.now - started == pytest.approx(2.0)


def test_stopping_while_the_book_is_away_raises_stopped(
    book: SharedBook, stop: TickingEvent, clock: FakeClock
) -> None:
    limiter = RateLimiter(1, clock=clock, slots=book, stop=stop)
    book.away = True
    stop.on_wait = lambda n: stop.set() if n == 3 else None
    with pytest.raises(Stopped):
        limiter.acquire("sign")
    assert len(stop.waits) == 3


def test_a_penalty_the_book_missed_is_honoured_and_handed_on(
    book: SharedBook, stop: TickingEvent, clock: FakeClock
) -> None:
    limiter = RateLimiter(1, clock=clock, slots=book, stop=stop, margin=1.0)
    limiter.acquire("sign")
    book.away = True
    limiter.penalize("sign", 10.0)  # never raises: kept here instead
    book.away = False
    clock.now += 4.0
    started = clock.now
    limiter.acquire("sign")
    penalties = [c for c in book.calls if c[0] == "penalize"]
    assert penalties == [("penalize", "sign", 10.0), ("penalize", "sign", pytest.approx(6.0))]
    assert clock.now - started == pytest.approx(6.0)
    limiter.acquire("sign")  # handed on once, not again
    assert sum(c[0] == "penalize" for c in book.calls) == 2
