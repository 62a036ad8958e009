"""The daemon: lock the state dir, recover, rescan, then run watcher, settle and worker threads.

Signal handlers only set flags; the main loop decides. First SIGTERM/SIGINT: warm stop
(in-flight uploads are interrupted and their rows released for the next start); a second one:
exit at once (the journal is consistent at every commit, so the crash rule covers it).
SIGHUP: reload the config (key, limits, watch folders) without dropping in-flight uploads.
"""

from __future__ import annotations

import functools
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from mavi_uploader import housekeeping
from mavi_uploader.config import Config, ConfigError
from mavi_uploader.disposal import SWEEP_GRACE_SECONDS, Aftercare
from mavi_uploader.journal import Journal
from mavi_uploader.lock import StateDirLock
from mavi_uploader.log import get_logger
from mavi_uploader.mavi import MaviClient
from mavi_uploader.notify import Notifier
from mavi_uploader.pause import PauseGate
from mavi_uploader.ratelimit import BandwidthLimiter, RateLimiter
from mavi_uploader.records import State
from mavi_uploader.redaction import register_secret
from mavi_uploader.settle import Settler
from mavi_uploader.uploader import Worker, WorkerSettings
from mavi_uploader.views import upload_progress
from mavi_uploader.watcher import Watcher, watch_roots
from mavi_uploader.writers import ignore_lease_breaks

log = get_logger(__name__)
WATCH_RETRY_SECONDS = 10.0
ONCE_POLL_SECONDS = 0.2
ONCE_UNREACHABLE_SECONDS = 120.0
COLD_STOP_EXIT = 130
# systemd's WatchdogSec is 60 s in our units: ping well inside it, report STATUS as often.
REPORT_EVERY_SECONDS = 5.0
STALE_BEAT_SECONDS = 30.0
# Settings a reload cannot change in a running daemon.
_RESTART_ONLY = ("state_dir",)


def summary(counts: dict[str, int], paused: str | None = None) -> str:
    """One line for `systemctl status`: the non-zero states, and the pause if any."""
    parts = [f"{n} {state}" for state, n in counts.items() if n]
    text = ", ".join(parts) or "no files yet"
    return f"PAUSED ({paused}); {text}" if paused else text


def _worker_settings(cfg: Config) -> WorkerSettings:
    return WorkerSettings(cfg.dedupe, cfg.after_upload, cfg.done_dir)


@dataclass
class _Parts:
    journal: Journal
    limiter: RateLimiter
    bandwidth: BandwidthLimiter
    client: MaviClient
    gate: PauseGate
    watcher: Watcher
    settler: Settler


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        once: bool = False,
        reload_config: Callable[[], Config] | None = None,
        show_progress: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.config = config
        self.once = once
        self.stop = threading.Event()
        self.work_ready = threading.Event()  # set when files are queued: wakes idle workers
        self._reload_config = reload_config
        self._show_progress = show_progress
        self._signals = 0
        self._hup = False
        self._threads: list[threading.Thread] = []
        self._workers: dict[int, Worker] = {}  # slot -> its worker (one per slot at a time)
        self._workers_lock = threading.Lock()
        self._beats: dict[str, float] = {}  # loop name -> last turn (monotonic)
        self.notifier = Notifier()

    # ---- signals ---------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_hup)
        # The writer probe's read lease: a writer opening the file while we hold it makes the
        # kernel send us SIGIO, fatal by default. Only once it is ignored does the probe take
        # leases (until then it scans /proc).
        ignore_lease_breaks()

    def _on_stop_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            os._exit(COLD_STOP_EXIT)
        self.stop.set()
        self.work_ready.set()

    def _on_hup(self, _signum: int, _frame: FrameType | None) -> None:
        self._hup = True

    # ---- life cycle ------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped (or, with once=True, until nothing is left); returns exit code."""
        register_secret(self.config.api_key)
        lock = StateDirLock(self.config.state_dir)
        journal = Journal.open(self.config.state_dir)
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

    def _assemble(self, journal: Journal) -> _Parts:
        cfg = self.config
        limiter = RateLimiter(cfg.rate_limit_per_second, stop=self.stop)
        return _Parts(
            journal=journal,
            limiter=limiter,
            bandwidth=BandwidthLimiter(cfg.bandwidth_limit, stop=self.stop),
            client=MaviClient(cfg.api_base, cfg.api_key, limiter=limiter),
            gate=PauseGate(journal),
            watcher=Watcher(watch_roots(cfg), journal),
            settler=Settler(journal, cfg.settle_seconds),
        )

    def _run_locked(self, journal: Journal) -> int:
        recovered = journal.recover_after_crash()
        if recovered:
            log.info("recovered in-flight files after a stop", count=recovered)
        self._finish_owed_after_upload(journal, grace_seconds=0.0)
        parts = self._assemble(journal)
        if not self.once:
            parts.watcher.start()  # observers first, so nothing lands unseen during the rescan
        started = time.monotonic()
        seen = parts.watcher.rescan()
        log.info(
            "ready",
            state_dir=str(self.config.state_dir),
            watches=[str(w.path) for w in self.config.watches],
            new_files=seen,
            rescan_s=round(time.monotonic() - started, 3),
            once=self.once,
        )
        self._spawn("settle", lambda: self._settle_loop(parts.settler))
        if not self.once:
            self._spawn("watcher", lambda: self._watch_loop(parts.watcher))
        self._staff_workers(parts)
        self.notifier.ready(summary(journal.counts()))
        try:
            return self._supervise(parts)
        finally:
            self.notifier.stopping()
            self.stop.set()
            self.work_ready.set()
            parts.watcher.stop()

    def _staff_workers(self, parts: _Parts) -> None:
        """Start workers up to `concurrency`; extra ones retire after their current file."""
        settings = _worker_settings(self.config)
        with self._workers_lock:
            for worker in self._workers.values():
                worker.settings = settings
            for n in range(self.config.concurrency):
                if n in self._workers:
                    continue  # busy, or retiring and now wanted again: it carries on
                worker = Worker(
                    f"worker-{n + 1}",
                    parts.journal,
                    parts.client,
                    parts.gate,
                    settings,
                    self.stop,
                    on_claim=self.work_ready.set,
                    bandwidth=parts.bandwidth,
                )
                self._workers[n] = worker
                body = functools.partial(self._work_loop, worker, n, parts.journal)
                self._spawn(worker.owner, body)

    def _supervise(self, parts: _Parts) -> int:
        watcher = parts.watcher
        next_rescan = time.monotonic() + (self.config.rescan_interval_seconds or float("inf"))
        next_watch_check = time.monotonic() + WATCH_RETRY_SECONDS
        next_report = 0.0
        # Ping at least twice per WatchdogSec, whatever the unit sets it to.
        report_every = min(REPORT_EVERY_SECONDS, self.notifier.watchdog_interval or math.inf)
        next_prune = time.monotonic()  # once at start, then hourly
        while not self.stop.wait(ONCE_POLL_SECONDS if self.once else 1.0):
            if self._show_progress is not None:
                now = time.time()
                uploading = parts.journal.in_states([State.UPLOADING])
                self._show_progress([upload_progress(r, now) for r in uploading])
            if time.monotonic() >= next_report:
                next_report = time.monotonic() + report_every
                self._report(parts)
            if self._hup:
                self._hup = False
                self._reload(parts)
            if self.once:
                code = self._once_outcome(parts)
                if code is not None:
                    return code
                continue
            now = time.monotonic()
            if now >= next_watch_check:
                next_watch_check = now + WATCH_RETRY_SECONDS
                for root in watcher.ensure_watching():
                    watcher.rescan([root])
            if watcher.overflowed():
                log.warning("kernel dropped file events; rescanning", new_files=watcher.rescan())
            if now >= next_prune:
                next_prune = now + housekeeping.PRUNE_EVERY_SECONDS
                self._finish_owed_after_upload(parts.journal)
                removed = housekeeping.prune(parts.journal, self.config.keep_done_days)
                if removed:
                    log.info(
                        "journal retention",
                        removed=removed,
                        keep_done_days=self.config.keep_done_days,
                    )
            if now >= next_rescan:
                next_rescan = now + (self.config.rescan_interval_seconds or float("inf"))
                log.info("periodic rescan", new_files=watcher.rescan())
        log.info("stopping")
        if self.once and parts.journal.has_unfinished():
            log.warning("stopped before every file was handled; the next run resumes them")
            return 1
        return 0

    def _once_outcome(self, parts: _Parts) -> int | None:
        """`run --once`: its exit code when the run is over, None while it goes on."""
        if parts.gate.paused():
            log.error("stopping: uploads are paused", reason=parts.gate.reason)
            return 1
        if not parts.journal.has_unfinished():
            counts = parts.journal.counts()
            log.info("all files handled", **counts)
            return 1 if counts[State.FAILED.value] else 0
        # The daemon waits out any outage; a one-shot run (cron, a script) must end instead.
        silent = parts.client.unreachable_for()
        if silent >= ONCE_UNREACHABLE_SECONDS:
            log.error(
                "stopping: MAVI or its storage has not answered; unfinished files stay"
                " queued for the next run",
                seconds=round(silent),
                **{k: v for k, v in parts.journal.counts().items() if v},
            )
            return 1
        return None

    def _finish_owed_after_upload(
        self, journal: Journal, grace_seconds: float = SWEEP_GRACE_SECONDS
    ) -> None:
        cfg = self.config
        finished = Aftercare(journal, cfg.after_upload, cfg.done_dir).sweep(grace_seconds)
        if finished:
            log.info("finished after_upload left owed by a stop or a failure", count=finished)

    def _report(self, parts: _Parts) -> None:
        """STATUS= for `systemctl status`, and WATCHDOG=1 only while the machinery moves.

        The counts query proves the journal answers; the beats prove the settle and watcher
        loops turn. A wedged daemon stops pinging and systemd restarts it.
        """
        counts = parts.journal.counts()
        self.notifier.status(summary(counts, parts.gate.reason))
        now = time.monotonic()
        stale = [name for name, beat in self._beats.items() if now - beat > STALE_BEAT_SECONDS]
        if stale:
            log.error("threads not making progress; withholding the watchdog ping", threads=stale)
            return
        self.notifier.watchdog()

    def _reload(self, parts: _Parts) -> None:
        """SIGHUP: re-read the config; keep running on the old one if the new one is bad."""
        parts.gate.reset()  # a paused daemon probes at once: the key may have been fixed
        if self._reload_config is None:
            return
        try:
            new = self._reload_config()
        except ConfigError as exc:
            log.error("SIGHUP: config not reloaded, keeping the running one", error=str(exc))
            return
        for key in _RESTART_ONLY:
            if getattr(new, key) != getattr(self.config, key):
                log.warning("SIGHUP: this setting needs a restart", setting=key)
        register_secret(new.api_key)
        parts.client.set_credentials(new.api_base, new.api_key)
        parts.limiter.set_rate(new.rate_limit_per_second)
        parts.bandwidth.set_rate(new.bandwidth_limit)
        parts.settler.settle_seconds = new.settle_seconds
        self.config = new
        self._staff_workers(parts)
        added = parts.watcher.set_roots(watch_roots(new))
        if self.once:
            parts.watcher.rescan(added)
        else:
            for root in parts.watcher.ensure_watching():
                parts.watcher.rescan([root])
        log.info("SIGHUP: config reloaded", watches=[str(w.path) for w in new.watches])

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

    def _settle_loop(self, settler: Settler) -> None:
        while not self.stop.is_set():
            self._beats["settle"] = time.monotonic()
            if settler.tick():
                self.work_ready.set()
            self.stop.wait(min(1.0, max(0.05, settler.settle_seconds / 4)))

    def _watch_loop(self, watcher: Watcher) -> None:
        while not self.stop.is_set():
            self._beats["watcher"] = time.monotonic()
            watcher.pump(timeout=0.5)

    def _work_loop(self, worker: Worker, index: int, journal: Journal) -> None:
        while not self.stop.is_set():
            if index >= self.config.concurrency:
                with self._workers_lock:  # decided under the lock staffing uses: no lost slot
                    if index >= self.config.concurrency:
                        del self._workers[index]
                        log.info("worker retired (concurrency lowered)", worker=worker.owner)
                        return
            self.work_ready.clear()
            if worker.run_once():
                continue
            due = journal.next_due_at()
            wait = 2.0 if due is None else min(2.0, max(0.05, due - time.time()))
            self.work_ready.wait(wait)
