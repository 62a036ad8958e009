"""Rescans on a thread of their own, one at a time.

A rescan walks whole trees: on a slow NFS share that takes minutes. Run on the supervisor
thread, which sends WATCHDOG=1, it got a healthy daemon killed by systemd. Here the walk beats
on every folder and file, so the supervisor can still notice a rescan that truly hangs (no
progress for a generous limit) and withhold the ping then.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from mavi_uploader.config.timers import Timers
from mavi_uploader.log import get_logger
from mavi_uploader.watch.roots import WatchRoot
from mavi_uploader.watch.watcher import Watcher

log = get_logger(__name__)


class _Stopping(Exception):
    """Raised from the progress tick: the daemon is stopping, drop the walk."""


class Rescanner:
    """Takes rescan requests from any thread; `run()` (its thread) carries them out.

    Requests made while a rescan runs are merged into the next one: a full rescan covers every
    partial one, and roots asked for twice are walked once.
    """

    def __init__(
        self,
        watcher: Watcher,
        stop: threading.Event,
        *,
        clock: Callable[[], float] = time.monotonic,
        retry_seconds: float = Timers.rescan_retry,  # after a failed rescan: try it again
    ) -> None:
        self._watcher = watcher
        self._stop = stop
        self._clock = clock
        self._retry_seconds = retry_seconds
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._everything = False
        self._roots: dict[str, WatchRoot] = {}
        self._reasons: list[str] = []
        self._running = False
        self.beat = clock()  # last sign of life: a turn of the idle loop or a step of a walk

    def request(self, reason: str, roots: Sequence[WatchRoot] | None = None) -> None:
        """Rescan `roots` (None: every root) as soon as the running rescan, if any, is over."""
        with self._lock:
            if roots is None:
                self._everything = True
            else:
                self._roots.update((root.root, root) for root in roots)
            if reason not in self._reasons:
                self._reasons.append(reason)
        self._wake.set()

    @property
    def busy(self) -> bool:
        """A rescan is running or waiting to run (`run --once` must not end before it)."""
        with self._lock:
            return self._running or self._everything or bool(self._roots)

    def wake(self) -> None:
        self._wake.set()

    def run(self) -> None:
        """The thread body: carry out requests until the daemon stops."""
        while not self._stop.is_set():
            self.beat = self._clock()
            self._wake.clear()
            job = self._take()
            if job is None:
                self._wake.wait(1.0)
                continue
            roots, reasons = job
            try:
                self._rescan(roots, reasons)
            except _Stopping:
                return
            except Exception:
                # The journal failing (disk full) must not lose the request: put it back.
                log.exception("rescan failed; will try again", reasons=reasons)
                self.request(", ".join(reasons), roots)
                self._stop.wait(self._retry_seconds)
            finally:
                with self._lock:
                    self._running = False

    def _take(self) -> tuple[list[WatchRoot] | None, list[str]] | None:
        with self._lock:
            if not (self._everything or self._roots):
                return None
            roots = None if self._everything else list(self._roots.values())
            reasons = self._reasons
            self._everything, self._roots, self._reasons = False, {}, []
            self._running = True
            return roots, reasons

    def _rescan(self, roots: list[WatchRoot] | None, reasons: list[str]) -> None:
        started = self._clock()
        found = self._watcher.rescan(roots, on_progress=self._tick)
        log.info(
            "rescan done",
            reasons=reasons,
            roots=None if roots is None else [r.root for r in roots],
            new_files=found,
            seconds=round(self._clock() - started, 3),
        )

    def _tick(self) -> None:
        if self._stop.is_set():
            raise _Stopping
        self.beat = self._clock()
