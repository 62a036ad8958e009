"""One fleet host taking slots from the shared rate limit, for tests/test_fleet_slots.py.

As a script: `fleet_slot_host.py URL HOST_ID RATE COUNT` opens the fleet's journal as host
HOST_ID, prints `ready`, waits for a line on stdin, takes COUNT slots for "sign" and prints
them as one JSON list of [earliest, returned] times (TimedBook; time.time(): one clock for
every process on the machine, and the database's too).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from mavi_uploader.journal import Fleet, JournalStore, open_journal, shared_rate_slots
from mavi_uploader.mavi.ratelimit import RateLimiter, SlotBook


class TimedBook:
    """A slot book that notes, per thread, the earliest moment its last slot can start.

    The book answers "your slot starts in `delay`", counted from when it read its clock, which
    is after the question was sent: the slot cannot start before sent + delay. A grant's
    `earliest` is that bound; its `returned` is when acquire returned. A thread the machine
    wakes late returns late, but the slot it got stays where the book put it.
    """

    def __init__(self, book: SlotBook) -> None:
        self._book = book
        self.unavailable = book.unavailable
        self._last = threading.local()

    def reserve(self, endpoint: str, interval: float) -> float:
        sent = time.time()
        delay = self._book.reserve(endpoint, interval)
        self._last.earliest = sent + delay
        return delay

    def penalize(self, endpoint: str, seconds: float) -> None:
        self._book.penalize(endpoint, seconds)

    def blocked_for(self, endpoint: str) -> float:
        return self._book.blocked_for(endpoint)

    def take(self, limiter: RateLimiter, endpoint: str) -> tuple[float, float]:
        """One acquire through a limiter on this book: (earliest, returned)."""
        limiter.acquire(endpoint)
        returned = time.time()
        earliest: float = self._last.earliest
        return earliest, returned


def open_host(url: str, host_id: str) -> JournalStore:
    return open_journal(Path("."), fleet=Fleet(url=url, host_id=host_id))


def main(url: str, host_id: str, rate: str, count: str) -> None:
    journal = open_host(url, host_id)
    try:
        slots = shared_rate_slots(journal)
        assert slots is not None
        book = TimedBook(slots)
        limiter = RateLimiter(float(rate), slots=book)
        print("ready", flush=True)
        sys.stdin.readline()
        grants = [book.take(limiter, "sign") for _ in range(int(count))]
        print(json.dumps(grants), flush=True)
    finally:
        journal.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
