"""This daemon's membership of a fleet: its host id held, its heartbeat, its wake-ups.

On SQLite there is no fleet: every call here does nothing, so the daemon reads the same
either way.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from mavi_uploader.journal import Fleet, HostTaken, JournalStore, lock_host
from mavi_uploader.log import get_logger

log = get_logger(__name__)


class Membership:
    """Join before the journal is opened (the crash rule runs only while this host's id is
    ours), `start` once it is, `beat` every `every` seconds, `leave` at the end."""

    def __init__(self, fleet: Fleet | None) -> None:
        self.fleet = fleet
        self._lock = lock_host(fleet) if fleet is not None else None  # HostTaken: exit 3
        self._journal: JournalStore | None = None
        self._lost: str | None = None

    @property
    def every(self) -> float:
        """Heartbeat period: three beats per host_timeout, so one lost beat costs nothing."""
        return self.fleet.host_timeout / 3 if self.fleet is not None else float("inf")

    def start(self, journal: JournalStore, wake: Callable[[], None]) -> None:
        """Say we are alive before any claim, and wake idle workers when any host queues."""
        if self.fleet is None:
            return
        self._journal = journal
        journal.heartbeat(os.getpid())
        journal.on_new_work(wake)

    def beat(self) -> None:
        """One heartbeat (a periodic job). While the server is away this raises JournalError
        and the job runs again at its next turn; the host id is taken again when it is back."""
        if self._journal is None or self._lock is None:
            return
        # The beat first: a beat that fails is what tells the journal this host missed one
        # (so it takes no silent host's work until it has been back a whole host_timeout).
        self._journal.heartbeat(os.getpid())
        try:
            self._lock.keep()
        except HostTaken as exc:
            self._lost = str(exc)
            raise

    @property
    def lost(self) -> str | None:
        """Why this daemon must stop: another daemon took its host id during an outage."""
        return self._lost

    def leave(self) -> None:
        if self._lock is not None:
            self._lock.release()
