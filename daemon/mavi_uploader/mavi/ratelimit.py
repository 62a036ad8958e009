"""A request-spacing limiter shared by all workers, one slot sequence per MAVI endpoint."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Clock = Callable[[], float]


class Stopped(Exception):
    """Raised by a wait that was cut short because the daemon is stopping."""


# The server counts requests by their arrival; network jitter can bring two requests closer
# together than we sent them, so space them 10% wider than the limit (5% was measured to
# be too little on a loaded machine).
JITTER_MARGIN = 1.10


def _interval(rate_per_second: float, margin: float) -> float:
    return margin / rate_per_second if rate_per_second > 0 else 0.0


class RateLimiter:
    """Hands out call slots at most `rate` per second for each endpoint.

    Slots are reserved under a lock but waited for outside it, so one slow waiter never blocks
    another endpoint. `penalize` pushes an endpoint's next slot back after a 429.
    """

    def __init__(
        self,
        rate_per_second: float,
        *,
        clock: Clock = time.monotonic,
        stop: threading.Event | None = None,
        margin: float = JITTER_MARGIN,
    ) -> None:
        self._margin = margin
        self._interval = _interval(rate_per_second, margin)
        self._clock = clock
        self._stop = stop or threading.Event()
        self._lock = threading.Lock()
        self._next_slot: dict[str, float] = {}
        self._blocked_until: dict[str, float] = {}

    def set_rate(self, rate_per_second: float) -> None:
        with self._lock:
            self._interval = _interval(rate_per_second, self._margin)

    def reserve(self, endpoint: str) -> float:
        """Reserve the next slot; returns how long the caller must wait before using it."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot.get(endpoint, now))
            self._next_slot[endpoint] = slot + self._interval
            return slot - now

    def acquire(self, endpoint: str) -> None:
        """Block until a slot for `endpoint` is ours; raises Stopped if the daemon stops."""
        while True:
            delay = self.reserve(endpoint)
            if delay > 0 and self._stop.wait(delay):
                raise Stopped
            with self._lock:
                # A 429 while we waited voids slots reserved before it: take a new one.
                if self._blocked_until.get(endpoint, 0.0) <= self._clock():
                    return

    def penalize(self, endpoint: str, seconds: float) -> None:
        """The server said slow down: no call to `endpoint` before `seconds` from now."""
        with self._lock:
            earliest = self._clock() + seconds
            if self._next_slot.get(endpoint, 0.0) < earliest:
                self._next_slot[endpoint] = earliest
            self._blocked_until[endpoint] = max(self._blocked_until.get(endpoint, 0.0), earliest)


class BandwidthLimiter:
    """Paces bytes sent by all workers together to `bytes_per_second` (0 = unlimited).

    Each chunk reserves its share of the timeline; a caller waits until its chunk may start.
    Chunks are kept small (`chunk_size`) so the pace is smooth, not bursts and long pauses.
    """

    def __init__(
        self,
        bytes_per_second: int,
        *,
        clock: Clock = time.monotonic,
        stop: threading.Event | None = None,
    ) -> None:
        self._rate = max(0, bytes_per_second)
        self._clock = clock
        self._stop = stop or threading.Event()
        self._lock = threading.Lock()
        self._next = 0.0

    @property
    def chunk_size(self) -> int:
        """Bytes per read: about 1/8 s of the allowed rate, between 64 KiB and 1 MiB."""
        if self._rate == 0:
            return 1024 * 1024
        return min(1024 * 1024, max(64 * 1024, self._rate // 8))

    def set_rate(self, bytes_per_second: int) -> None:
        with self._lock:
            self._rate = max(0, bytes_per_second)

    def reserve(self, nbytes: int) -> float:
        """Book `nbytes` on the shared timeline; returns how long to wait before sending."""
        with self._lock:
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
