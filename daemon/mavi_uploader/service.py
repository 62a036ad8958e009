"""The daemon: lock the state dir, recover, rescan, then run watcher, settle and worker threads.

Signal handlers only set flags; the main loop decides. First SIGTERM/SIGINT: warm stop
(in-flight uploads are interrupted and their rows released for the next start); a second one:
exit at once (the journal is consistent at every commit, so the crash rule covers it).
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from mavi_uploader.config import Config
from mavi_uploader.journal import Journal
from mavi_uploader.lock import StateDirLock
from mavi_uploader.log import get_logger
from mavi_uploader.mavi import MaviClient
from mavi_uploader.pause import PauseGate
from mavi_uploader.ratelimit import RateLimiter
from mavi_uploader.records import State
from mavi_uploader.redaction import register_secret
from mavi_uploader.settle import Settler
from mavi_uploader.uploader import Worker, WorkerSettings
from mavi_uploader.watcher import Watcher, WatchRoot

log = get_logger(__name__)
WATCH_RETRY_SECONDS = 10.0
ONCE_POLL_SECONDS = 0.2
COLD_STOP_EXIT = 130


class Daemon:
    def __init__(self, config: Config, *, once: bool = False) -> None:
        self.config = config
        self.once = once
        self.stop = threading.Event()
        self.work_ready = threading.Event()  # set when files are queued: wakes idle workers
        self._signals = 0
        self._threads: list[threading.Thread] = []

    # ---- signals ---------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _on_stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            os._exit(COLD_STOP_EXIT)
        self.stop.set()
        self.work_ready.set()

    def _on_hup(self, _signum: int, _frame: FrameType | None) -> None:
        self._hup = True

    _hup = False

    # ---- life cycle ------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped (or, with once=True, until nothing is left); returns exit code."""
        cfg = self.config
        register_secret(cfg.api_key)
        lock = StateDirLock(cfg.state_dir)
        journal = Journal.open(cfg.state_dir)
        try:
            lock.acquire()
            return self._run_locked(journal)
        finally:
            self.stop.set()
            self.work_ready.set()
            for thread in self._threads:
                thread.join(timeout=30)
            journal.close()
            lock.release()

    def _run_locked(self, journal: Journal) -> int:
        cfg = self.config
        recovered = journal.recover_after_crash()
        if recovered:
            log.info("recovered in-flight files after a stop", count=recovered)
        limiter = RateLimiter(cfg.rate_limit_per_second, stop=self.stop)
        client = MaviClient(cfg.api_base, cfg.api_key, limiter=limiter)
        gate = PauseGate(journal)
        roots = [WatchRoot.from_config(w, cfg.extensions) for w in cfg.watches]
        watcher = Watcher(roots, journal)
        if not self.once:
            watcher.start()  # observers first, so nothing lands unseen during the rescan
        started = time.monotonic()
        seen = watcher.rescan()
        log.info(
            "ready",
            state_dir=str(cfg.state_dir),
            watches=[r.root for r in roots],
            new_files=seen,
            rescan_s=round(time.monotonic() - started, 3),
            once=self.once,
        )
        settler = Settler(journal, cfg.settle_seconds)
        settings = WorkerSettings(cfg.dedupe, cfg.after_upload, cfg.done_dir)
        tick = min(1.0, max(0.05, cfg.settle_seconds / 4))
        self._spawn("settle", lambda: self._settle_loop(settler, tick))
        if not self.once:
            self._spawn("watcher", lambda: self._watch_loop(watcher))
        for n in range(cfg.concurrency):
            worker = Worker(
                f"worker-{n + 1}",
                journal,
                client,
                gate,
                settings,
                self.stop,
                on_claim=self.work_ready.set,
            )
            self._spawn(worker.owner, functools.partial(self._work_loop, worker, journal))
        try:
            return self._supervise(journal, watcher, gate)
        finally:
            self.stop.set()
            self.work_ready.set()
            watcher.stop()

    def _supervise(self, journal: Journal, watcher: Watcher, gate: PauseGate) -> int:
        next_rescan = time.monotonic() + (self.config.rescan_interval_seconds or float("inf"))
        next_watch_check = time.monotonic() + WATCH_RETRY_SECONDS
        while not self.stop.wait(ONCE_POLL_SECONDS if self.once else 1.0):
            if self._hup:
                self._hup = False
                log.info("SIGHUP: probing the API again if paused")
                gate.reset()
            if self.once:
                if gate.paused():
                    log.error("stopping: uploads are paused", reason=gate.reason)
                    return 1
                if not journal.has_unfinished():
                    counts = journal.counts()
                    log.info("all files handled", **counts)
                    return 1 if counts[State.FAILED.value] else 0
                continue
            now = time.monotonic()
            if now >= next_watch_check:
                next_watch_check = now + WATCH_RETRY_SECONDS
                for root in watcher.ensure_watching():
                    watcher.rescan([root])
            if watcher.overflowed():
                log.warning("kernel dropped file events; rescanning", new_files=watcher.rescan())
            if now >= next_rescan:
                next_rescan = now + self.config.rescan_interval_seconds
                log.info("periodic rescan", new_files=watcher.rescan())
        log.info("stopping")
        return 0

    # ---- thread bodies ---------------------------------------------------------------

    def _spawn(self, name: str, body: Callable[[], None]) -> None:
        thread = threading.Thread(target=self._guarded(name, body), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _guarded(self, name: str, body: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            while not self.stop.is_set():
                try:
                    body()
                    return
                except Exception:
                    # Keep the daemon up (e.g. disk full for a moment); retry after a pause.
                    log.exception("thread error; continuing", thread=name)
                    self.stop.wait(1.0)

        return run

    def _settle_loop(self, settler: Settler, tick: float) -> None:
        while not self.stop.is_set():
            if settler.tick():
                self.work_ready.set()
            self.stop.wait(tick)

    def _watch_loop(self, watcher: Watcher) -> None:
        while not self.stop.is_set():
            watcher.pump(timeout=0.5)

    def _work_loop(self, worker: Worker, journal: Journal) -> None:
        while not self.stop.is_set():
            self.work_ready.clear()
            if worker.run_once():
                continue
            due = journal.next_due_at()
            wait = 2.0 if due is None else min(2.0, max(0.05, due - time.time()))
            self.work_ready.wait(wait)
