"""The global pause: after a 401/402/403 nothing is uploaded until a probe gets through."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from mavi_uploader.config.timers import Timers
from mavi_uploader.journal import JournalStore
from mavi_uploader.log import get_logger

log = get_logger(__name__)


class PauseGate:
    """Shared by all workers. While paused, at most one probe per `probe_interval` (a minute).

    The reason is kept in the journal too, so `status` (another process) can show it.
    """

    def __init__(
        self,
        journal: JournalStore,
        *,
        clock: Callable[[], float] = time.monotonic,
        probe_interval: float = Timers.pause_probe_every,
    ) -> None:
        self._journal = journal
        self._clock = clock
        self._probe_interval = probe_interval
        self._lock = threading.Lock()
        pause = journal.pause()
        self._reason: str | None = pause.reason if pause else None
        # A pause inherited from a previous run: probe right away (restart lifts it if fixed).
        self._next_probe = clock()

    @property
    def reason(self) -> str | None:
        return self._reason

    def paused(self) -> bool:
        return self._reason is not None

    def admit(self) -> bool:
        """May a worker start an API-bound job now? While paused: one probe per interval."""
        with self._lock:
            if self._reason is None:
                return True
            now = self._clock()
            if now < self._next_probe:
                return False
            self._next_probe = now + self._probe_interval
            return True

    def trip(self, reason: str) -> None:
        with self._lock:
            first = self._reason is None
            self._reason = reason
            self._next_probe = self._clock() + self._probe_interval
        self._journal.set_pause(reason)
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

    def reset(self) -> None:
        """SIGHUP / new key: probe at once instead of waiting for the interval."""
        with self._lock:
            self._next_probe = self._clock()
