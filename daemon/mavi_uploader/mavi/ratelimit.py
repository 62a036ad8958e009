"""Request spacing shared by all workers, one slot sequence per MAVI endpoint, and the byte pace.

Where the slots are booked is a `SlotBook`: in this process (`LocalSlots`, the default), or,
in fleet mode, in the fleet's journal so every host shares the account's limit (the journal
provides one; this layer does not import it).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from mavi_uploader.config.timetable import OFF, InForce, LocalClock, Timetable
from mavi_uploader.log import get_logger

Clock = Callable[[], float]
log = get_logger(__name__)


class Stopped(Exception):
    """Raised by a wait that was cut short because the daemon is stopping."""


# The server counts requests by their arrival; network jitter can bring two requests closer
# together than we sent them, so space them 10% wider than the limit (5% was measured to
# be too little on a loaded machine).
JITTER_MARGIN = 1.10
# While a shared book is out of reach: first retry after this, doubling up to the cap.
AWAY_BACKOFF = 0.05
AWAY_BACKOFF_MAX = 1.0


def _interval(rate_per_second: float, margin: float) -> float:
    return margin / rate_per_second if rate_per_second > 0 else 0.0


class SlotBook(Protocol):
    """Where call slots are booked, per endpoint: each reservation takes the next free slot and
    moves the next one `interval` later; a penalty moves it to at least `seconds` from now."""

    @property
    def unavailable(self) -> tuple[type[Exception], ...]:
        """Errors that mean the book is out of reach for now (the limiter waits them out)."""
        ...

    def reserve(self, endpoint: str, interval: float) -> float:
        """Book the next slot; returns how long until it starts (0 = now)."""
        ...

    def penalize(self, endpoint: str, seconds: float) -> None:
        """No slot of `endpoint` starts before `seconds` from now; voids slots booked before."""
        ...

    def blocked_for(self, endpoint: str) -> float:
        """Seconds until the latest penalty of `endpoint` is over (0 = none in force)."""
        ...


class LocalSlots:
    """The slot book of one process, on its monotonic clock."""

    unavailable: tuple[type[Exception], ...] = ()

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.next_slot: dict[str, float] = {}
        self._blocked_until: dict[str, float] = {}

    def reserve(self, endpoint: str, interval: float) -> float:
        with self._lock:
            now = self._clock()
            slot = max(now, self.next_slot.get(endpoint, now))
            self.next_slot[endpoint] = slot + interval
            return slot - now

    def penalize(self, endpoint: str, seconds: float) -> None:
        with self._lock:
            earliest = self._clock() + seconds
            if self.next_slot.get(endpoint, 0.0) < earliest:
                self.next_slot[endpoint] = earliest
            self._blocked_until[endpoint] = max(self._blocked_until.get(endpoint, 0.0), earliest)

    def blocked_for(self, endpoint: str) -> float:
        with self._lock:
            return max(0.0, self._blocked_until.get(endpoint, 0.0) - self._clock())


class RateLimiter:
    """Hands out call slots at most `rate` per second for each endpoint.

    Slots are reserved in the book (`slots`: shared by the fleet; by default this process's)
    but waited for outside it, so one slow waiter never blocks another endpoint. `penalize`
    pushes an endpoint's next slot back after a 429. Rate 0 (unlimited) never asks a shared
    book: only a 429's penalty, kept in this process, makes a caller wait.
    """

    def __init__(
        self,
        rate_per_second: float,
        *,
        clock: Clock = time.monotonic,
        stop: threading.Event | None = None,
        margin: float = JITTER_MARGIN,
        slots: SlotBook | None = None,
    ) -> None:
        self._margin = margin
        self._interval = _interval(rate_per_second, margin)
        self._stop = stop or threading.Event()
        self._local = LocalSlots(clock)
        self._next_slot = self._local.next_slot  # the local book's slots, as tests watch them
        self._shared = slots
        self._lock = threading.Lock()
        self._owed: set[str] = set()  # penalties the shared book missed (it was away)
        self._away = False

    def set_rate(self, rate_per_second: float) -> None:
        with self._lock:
            self._interval = _interval(rate_per_second, self._margin)

    def _book(self) -> tuple[SlotBook, float]:
        interval = self._interval
        if self._shared is not None and interval > 0:
            return self._shared, interval
        return self._local, interval

    def reserve(self, endpoint: str) -> float:
        """Reserve the next slot; returns how long the caller must wait before using it
        (raises the book's `unavailable` errors: `acquire` waits those out)."""
        book, interval = self._book()
        return book.reserve(endpoint, interval)

    def acquire(self, endpoint: str) -> None:
        """Block until a slot for `endpoint` is ours; raises Stopped if the daemon stops.
        While the book is out of reach no slot is handed out: it waits and tries again."""
        backoff = AWAY_BACKOFF
        while True:
            book, interval = self._book()
            try:
                self._repay(book, endpoint)
                delay = book.reserve(endpoint, interval)
                # A slot free at once starts after every penalty booked before it; only a
                # penalty that lands while we wait (from any worker or host) voids it.
                if delay > 0:
                    if self._stop.wait(delay):
                        raise Stopped
                    if book.blocked_for(endpoint) > 0 or endpoint in self._owed:
                        continue
            except book.unavailable as exc:
                self._wait_out(exc, backoff)
                backoff = min(backoff * 2, AWAY_BACKOFF_MAX)
                continue
            if self._away:
                self._back()
            return

    def penalize(self, endpoint: str, seconds: float) -> None:
        """The server said slow down: no call to `endpoint` before `seconds` from now."""
        book, _ = self._book()
        if book is self._local:
            self._local.penalize(endpoint, seconds)
            return
        try:
            book.penalize(endpoint, seconds)
        except book.unavailable:
            # Honoured here at once; handed on to the shared book by the next acquire.
            self._local.penalize(endpoint, seconds)
            with self._lock:
                self._owed.add(endpoint)

    def _repay(self, book: SlotBook, endpoint: str) -> None:
        """Book a penalty the shared book missed while it was away (if still in force)."""
        if book is self._local or endpoint not in self._owed:
            return
        left = self._local.blocked_for(endpoint)
        if left > 0:
            book.penalize(endpoint, left)
        with self._lock:
            self._owed.discard(endpoint)

    def _wait_out(self, exc: Exception, backoff: float) -> None:
        with self._lock:
            first, self._away = not self._away, True
        if first:
            log.warning("rate slots out of reach: no API call until they are back", error=str(exc))
        if self._stop.wait(backoff):
            raise Stopped

    def _back(self) -> None:
        with self._lock:
            was, self._away = self._away, False
        if was:
            log.info("rate slots reachable again")


class BandwidthLimiter:
    """Paces bytes sent by all workers together to the bandwidth limit in force: a plain
    bytes/s (0 = unlimited) or a timetable, followed on the local clock `now`.

    Each chunk reserves its share of the timeline; a caller waits until its chunk may start.
    Chunks are kept small (`chunk_size`) so the pace is smooth, not bursts and long pauses.
    In a `pause` window no new upload may start (`holding`); uploads in flight go on at the
    rate before the window.
    """

    def __init__(
        self,
        limit: int | Timetable,
        *,
        clock: Clock = time.monotonic,
        stop: threading.Event | None = None,
        now: Callable[[], datetime] | None = None,  # default: the local clock
    ) -> None:
        self._clock = clock
        self._now = now or LocalClock()
        self._stop = stop or threading.Event()
        self._lock = threading.Lock()
        self._next = 0.0
        self._table = _timetable(limit)
        self._in_force: InForce | None = None
        self._rate = 0
        self._shown = OFF  # the limit last logged
        with self._lock:
            self._follow()

    @property
    def chunk_size(self) -> int:
        """Bytes per read: about 1/8 s of the allowed rate, between 64 KiB and 1 MiB."""
        with self._lock:
            rate = self._follow().pace
        if rate == 0:
            return 1024 * 1024
        return min(1024 * 1024, max(64 * 1024, rate // 8))

    def set_rate(self, limit: int | Timetable) -> None:
        """A new limit (SIGHUP): a bytes/s or a timetable, in force from now."""
        with self._lock:
            self._table, self._in_force = _timetable(limit), None
            self._follow()

    def in_force(self) -> InForce:
        """The limit in force now, and until when."""
        with self._lock:
            return self._follow()

    def holding(self) -> bool:
        """True while a `pause` window holds new uploads back."""
        return self.in_force().limit.paused

    def held_for(self) -> float | None:
        """Seconds until the `pause` window in force ends (inf: a pause without end); None
        when new uploads may start."""
        with self._lock:
            force = self._follow()
            if not force.limit.paused:
                return None
            if force.until is None:
                return math.inf
            return (force.until - self._now()).total_seconds()

    def reserve(self, nbytes: int) -> float:
        """Book `nbytes` on the shared timeline; returns how long to wait before sending."""
        with self._lock:
            self._follow()
            if self._rate == 0:
                return 0.0
            now = self._clock()
            start = max(now, self._next)
            self._next = start + nbytes / self._rate
            return start - now

    def consume(self, nbytes: int) -> None:
        """Wait for our turn to send `nbytes`; raises Stopped if the daemon stops meanwhile."""
        delay = self.reserve(nbytes)
        if delay > 0 and self._stop.wait(delay):
            raise Stopped

    def _follow(self) -> InForce:
        """The limit in force, read from the timetable again once it changes (under the lock)."""
        at, current = self._now(), self._in_force
        if current is not None and (current.until is None or at < current.until):
            return current
        force = self._in_force = self._table.in_force(at)
        if force.pace != self._rate:
            self._rate = force.pace
            self._next = self._clock()  # the new pace starts now, not after the old bookings
        if force.limit != self._shown:  # unlimited, as at start, goes without saying
            self._shown = force.limit
            until = force.until.isoformat(timespec="minutes") if force.until else None
            log.info("bandwidth limit", limit=force.limit.label, until=until)
        return force


def _timetable(limit: int | Timetable) -> Timetable:
    return limit if isinstance(limit, Timetable) else Timetable.steady(max(0, limit))
