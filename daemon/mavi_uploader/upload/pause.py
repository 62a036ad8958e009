"""The global pause: after a 401/402/403 nothing is uploaded until a probe gets through."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from mavi_uploader.config.timers import Timers
from mavi_uploader.journal import JournalError, JournalStore
from mavi_uploader.log import get_logger

log = get_logger(__name__)


class PauseGate:
    """Shared by all workers. While paused, at most one probe per `probe_interval` (a minute).

    The reason is kept in the journal too, so `status` (another process) can show it. With
    `fleet=True` the journal's pause is the fleet's: a pause tripped by any host stops every
    host (read from the journal at most every `refresh_every`), and the journal hands out the
    one probe per interval for the whole fleet.
    """

    def __init__(
        self,
        journal: JournalStore,
        *,
        clock: Callable[[], float] = time.monotonic,
        probe_interval: float = Timers.pause_probe_every,
        fleet: bool = False,
        refresh_every: float = 1.0,
    ) -> None:
        self._journal = journal
        self._clock = clock
        self._probe_interval = probe_interval
        self._fleet = fleet
        self._refresh_every = refresh_every
        self._lock = threading.Lock()
        pause = journal.pause()
        self._reason: str | None = pause.reason if pause else None
        # A pause inherited from a previous run: probe right away (restart lifts it if fixed).
        self._next_probe = clock()
        # A restart or SIGHUP (the key may have been fixed) probes at once, without waiting
        # for the fleet's next probe slot.
        self._urgent = True
        self._probe_was_urgent = False
        self._next_refresh = clock() + refresh_every

    @property
    def reason(self) -> str | None:
        return self._reason

    def paused(self) -> bool:
        return self._reason is not None

    def admit(self) -> bool:
        """May a worker start an API-bound job now? While paused: one probe per interval."""
        with self._lock:
            now = self._clock()
            if self._fleet and now >= self._next_refresh:
                self._refresh(now)
            if self._reason is None:
                self._urgent = False  # a pause that comes later waits for the fleet's slot
                return True
            if now < self._next_probe:
                return False
            self._next_probe = now + self._probe_interval
            urgent, self._urgent = self._urgent, False
            self._probe_was_urgent = urgent
        # The fleet's slot, outside our lock: a journal round trip must not hold up others.
        return not self._fleet or urgent or self._fleet_probe()

    def _refresh(self, now: float) -> None:
        """Another host may have paused or resumed the fleet (called under our lock)."""
        self._next_refresh = now + self._refresh_every
        try:
            pause = self._journal.pause()
        except JournalError:
            return  # the journal is away: no worker can claim either; keep what we knew
        reason = pause.reason if pause else None
        if reason == self._reason:
            return
        if reason is not None:
            log.warning("uploads paused by the fleet", reason=reason)
        else:
            log.info("uploads resumed by the fleet")
        self._reason = reason

    def _fleet_probe(self) -> bool:
        try:
            return self._journal.take_pause_probe(self._probe_interval)
        except JournalError:
            return False

    def trip(self, reason: str) -> None:
        with self._lock:
            first = self._reason is None
            self._reason = reason
            self._next_probe = self._clock() + self._probe_interval
        self._journal.set_pause(reason)
        if self._fleet:
            # The refusal counts as the fleet's probe: the next is due an interval from now.
            self._journal.take_pause_probe(self._probe_interval)
        if first:
            log.error("uploads paused", reason=reason, probe_every_s=self._probe_interval)

    def lift(self) -> None:
        """An authenticated call succeeded; resume everything."""
        with self._lock:
            if self._reason is None:
                return
            self._reason = None
        self._journal.clear_pause()
        log.info("uploads resumed")

    def unused(self) -> None:
        """The worker `admit()` let through found nothing to claim (the confirmer with no poll
        due, say): while paused, that probe goes to the next worker that asks, instead of
        waiting out the probe interval."""
        with self._lock:
            if self._reason is not None:
                self._next_probe = self._clock()
                self._urgent = self._urgent or self._probe_was_urgent

    def reset(self) -> None:
        """SIGHUP / new key: probe at once instead of waiting for the interval."""
        with self._lock:
            self._next_probe = self._clock()
            self._urgent = True
