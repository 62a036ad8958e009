"""The daemon: lock the state dir, recover, rescan, then run watcher, settle and worker threads.

Signal handlers only set flags (signals.py); the supervisor (the main thread) wakes on them and
decides. First SIGTERM/SIGINT: warm stop (requests in flight are cut, even one waiting for
storage to answer, and their rows released for the next start); a second one: exit at once
(the journal is consistent at every commit, so the crash rule covers it).
SIGHUP: reload the config (key, limits, watch folders) without dropping in-flight uploads.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from mavi_uploader.config.model import Config
from mavi_uploader.config.settings import ConfigError
from mavi_uploader.config.timers import Timers
from mavi_uploader.core.records import State
from mavi_uploader.core.reporting import upload_progress
from mavi_uploader.core.writers import ignore_lease_breaks
from mavi_uploader.journal import JournalError, Work, make_state_dir, open_journal
from mavi_uploader.journal import JournalStore as Journal
from mavi_uploader.log import dropped_lines, get_logger
from mavi_uploader.redaction import register_secret
from mavi_uploader.service import handoffs, housekeeping
from mavi_uploader.service.fleet import fleet_of
from mavi_uploader.service.httpd import endpoint_for
from mavi_uploader.service.lock import StateDirLock
from mavi_uploader.service.membership import Membership
from mavi_uploader.service.metrics import Metrics
from mavi_uploader.service.notify import Notifier
from mavi_uploader.service.once import OnceEnd
from mavi_uploader.service.parts import Parts, assemble, worker_settings
from mavi_uploader.service.signals import COLD_STOP_EXIT, SignalFlags
from mavi_uploader.service.supervisor import Loops, PeriodicJobs, summary
from mavi_uploader.upload.worker import Worker
from mavi_uploader.watch.roots import watch_roots
from mavi_uploader.watch.settle import Settler
from mavi_uploader.watch.watcher import Watcher

log = get_logger(__name__)
CONFIRMER = -1  # the confirmer's slot among the workers: never retired by `concurrency`
# Settings a reload cannot change in a running daemon.
_RESTART_ONLY = ("state_dir", "timers", "http_listen")
EXIT_HOST_TAKEN = 3  # the contract's "already running", as at start

__all__ = ["COLD_STOP_EXIT", "Daemon"]


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        once: bool = False,
        reload_config: Callable[[], Config] | None = None,
        show_progress: Callable[[list[dict[str, Any]]], None] | None = None,
        timers: Timers | None = None,
    ) -> None:
        self.config = config
        self.once = once
        self.timers = timers or config.timers  # the config's [timers], unless a test passes its own
        self.stop = threading.Event()
        self.work_ready = threading.Event()  # set when files are queued: wakes idle workers
        self.signals = SignalFlags()
        self._reload_config = reload_config
        self._show_progress = show_progress
        self._loops = Loops(self.stop, self.timers.guard_pause)
        self._workers: dict[int, Worker] = {}  # slot -> its worker (one per slot at a time)
        self._workers_lock = threading.Lock()
        self.notifier = Notifier()
        self._membership = Membership(None)  # joined in run()
        self.metrics = Metrics()  # the client's counts; served with the journal's on http_listen
        self._http = endpoint_for(lambda: self.config, self.metrics)  # None: no http_listen

    def install_signal_handlers(self) -> None:
        self.signals.install()
        # The writer probe's read lease: a writer opening the file while we hold it makes the
        # kernel send us SIGIO, fatal by default. Only once it is ignored does the probe take
        # leases (until then it scans /proc).
        ignore_lease_breaks()

    def request_stop(self) -> None:
        """Warm stop from code (any thread): what the first SIGTERM does."""
        self.signals.request_stop()

    # ---- life cycle ------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped (or, with once=True, until nothing is left); returns exit code."""
        for secret in self.config.secrets:  # the API key, the journal URL's password
            register_secret(secret)
        lock = StateDirLock(self.config.state_dir)
        make_state_dir(self.config.state_dir)
        # Lock first: opening the journal migrates it, which must never happen under a
        # running daemon (e.g. a newer build that will be refused with exit 3).
        lock.acquire()
        try:
            # In a fleet, this host's id too: the crash rule frees only what it held.
            self._membership = Membership(fleet_of(self.config))
            try:
                journal = open_journal(self.config.state_dir, fleet=self._membership.fleet)
                try:
                    return self._run_locked(journal)
                finally:
                    self._halt(None)
                    self._loops.join(self.timers.stop_grace)
                    journal.close()
            finally:
                self._membership.leave()
        finally:
            lock.release()
            self.signals.close()

    def _assemble(self, journal: Journal) -> Parts:
        ready = self.work_ready.set
        return assemble(self.config, self.timers, journal, self.stop, ready, self.metrics)

    def _run_locked(self, journal: Journal) -> int:
        if self._http is not None:  # first: an address it cannot have ends the start (exit 2)
            self._http.start()
        self._membership.start(journal, self.work_ready.set)
        recovered = journal.recover_after_crash()
        if recovered:
            log.info("recovered in-flight files after a stop", count=recovered)
        housekeeping.finish_owed_after_upload(journal, self.config, grace_seconds=0.0)
        parts = self._assemble(journal)
        started = time.monotonic()
        if self.once:
            # Before any worker: `run --once` must not find "nothing left" before it looked.
            seen: int | None = parts.watcher.rescan()
        else:
            parts.watcher.start()  # observers first, so nothing lands unseen during the rescan
            # On the rescan thread: a slow tree must hold back neither READY nor the pings.
            parts.rescanner.request("start-up")
            seen = None
        log.info(
            "ready",
            state_dir=str(self.config.state_dir),
            watches=[str(w.path) for w in self.config.watches],
            new_files=seen,
            rescan_s=round(time.monotonic() - started, 3) if self.once else None,
            once=self.once,
        )
        self._loops.spawn("rescan", parts.rescanner.run)
        self._loops.spawn("settle", lambda: self._settle_loop(parts.settler))
        if not self.once:
            self._loops.spawn("watcher", lambda: self._watch_loop(parts.watcher))
        self._staff_workers(parts)
        # Hand-offs read the config in force at each one (a SIGHUP changes it).
        for runner in handoffs.runners(
            journal, lambda: self.config.handoff, self.stop, self.timers
        ):
            self._loops.spawn(runner.owner, runner.run)
        self.notifier.ready(summary(journal.counts()))
        try:
            return self._supervise(parts)
        finally:
            self.notifier.stopping()
            self._halt(parts)
            parts.watcher.stop()

    def _halt(self, parts: Parts | None) -> None:
        """Tell every thread to stop, and cut the requests in flight so none waits them out."""
        self.stop.set()
        self.work_ready.set()
        if self._http is not None:
            self._http.stop()
        if parts is not None:
            parts.client.abort_requests()
            parts.rescanner.wake()

    def _staff_workers(self, parts: Parts) -> None:
        """Start upload workers up to `concurrency` (extra ones retire after their current
        file) and the confirmer: due confirmation polls never wait behind uploads."""
        settings = worker_settings(self.config)
        with self._workers_lock:
            for worker in self._workers.values():
                worker.settings = settings
            for n in [CONFIRMER, *range(self.config.concurrency)]:
                if n in self._workers:
                    continue  # busy, or retiring and now wanted again: it carries on
                worker = Worker(
                    "confirmer" if n == CONFIRMER else f"worker-{n + 1}",
                    parts.journal,
                    parts.client,
                    parts.gate,
                    settings,
                    self.stop,
                    on_claim=self.work_ready.set,
                    bandwidth=parts.bandwidth,
                    clock=parts.journal.now,
                    lease_seconds=self.timers.lease,
                    progress_every=self.timers.progress_every,
                    retry_first=self.timers.retry_first,
                    confirm_first=self.timers.confirm_first,
                    work=Work.CONFIRMATIONS if n == CONFIRMER else Work.UPLOADS,
                    first_checks=parts.first_checks,
                )
                self._workers[n] = worker
                body = functools.partial(self._work_loop, worker, n, parts)
                self._loops.spawn(worker.owner, body)

    def _supervise(self, parts: Parts) -> int:
        """The main thread's loop: one pass per nap (a signal ends the nap at once)."""
        jobs = self._jobs(parts, time.monotonic())
        once = self._once_end(parts) if self.once else None
        while True:
            self.signals.nap(self.timers.once_poll if self.once else self.timers.tick)
            code = self._pass(parts, jobs, time.monotonic(), once)
            if code is not None:
                return code

    def _once_end(self, parts: Parts) -> OnceEnd:
        return OnceEnd(
            parts.journal, parts.gate, parts.rescanner, parts.client, self.timers.once_unreachable,
            parts.bandwidth,
        )  # fmt: skip

    def _pass(
        self, parts: Parts, jobs: PeriodicJobs, now: float, once: OnceEnd | None
    ) -> int | None:
        """One pass: signals into events, threads that died, the jobs due at `now` and (`once`)
        the end of `run --once`; the exit code once the daemon should end, else None."""
        if self.signals.stop_requested or self.stop.is_set():
            self._halt(parts)  # first of all: cut the requests in flight
            log.info("stopping")
            if self.once and parts.journal.has_unfinished():
                log.warning("stopped before every file was handled; the next run resumes them")
                return 1
            return 0
        dead = self._loops.dead()
        if dead:
            # Restarting a thread that died of something the guard could not catch would
            # hide a bug; a service manager restarts the whole daemon instead.
            log.error("daemon threads died; exiting so the daemon is restarted", threads=dead)
            return 1
        if self.signals.take_hup():
            self._reload(parts, jobs)
        jobs.run_due(now)
        if self._membership.lost is not None:
            log.error("stopping: this host id is taken", error=self._membership.lost)
            return EXIT_HOST_TAKEN
        if once is None:
            return None
        try:
            return once.outcome(self.config.once_confirm_timeout_seconds)
        except JournalError as exc:
            log.warning("journal unavailable; `run --once` waits for it", error=str(exc))
            return None

    def _jobs(self, parts: Parts, now: float) -> PeriodicJobs:
        """The supervisor's timed jobs. Rescans are only requested: they run on their thread,
        never on this one, which pings the watchdog."""
        timers, jobs = self.timers, PeriodicJobs()
        # Ping at least twice per WatchdogSec, whatever the unit sets it to.
        report_every = min(timers.report_every, self.notifier.watchdog_interval or math.inf)
        jobs.add("report", report_every, functools.partial(self._report, parts), first=now)
        if self._membership.fleet is not None:
            beat = self._membership.every
            jobs.add("heartbeat", beat, self._membership.beat, first=now + beat)
        show = self._show_progress
        if show is not None:
            progress = functools.partial(self._progress, parts, show)
            jobs.add("progress bars", 0.0, progress, first=now)
        if self.once:
            return jobs  # no observers, no retention: the run ends when its files are handled
        watch_retry = timers.watch_retry
        look = functools.partial(self._look_for_watch_folders, parts)
        jobs.add("watch folders", watch_retry, look, first=now + watch_retry)
        jobs.add("event overflow", 0.0, functools.partial(self._after_overflow, parts), first=now)
        tidy = functools.partial(self._tidy, parts.journal)
        jobs.add("housekeeping", timers.prune_every, tidy, first=now)  # at start, then hourly
        rescan_every = self.config.rescan_interval_seconds or math.inf  # 0: off
        periodic = functools.partial(parts.rescanner.request, "periodic")
        jobs.add("rescan", rescan_every, periodic, first=now + rescan_every)
        return jobs

    def _progress(self, parts: Parts, show: Callable[[list[dict[str, Any]]], None]) -> None:
        uploading = parts.journal.in_states([State.UPLOADING])
        show([upload_progress(r, time.time()) for r in uploading])

    def _look_for_watch_folders(self, parts: Parts) -> None:
        appeared = parts.watcher.ensure_watching()
        if appeared:
            parts.rescanner.request("watch folder appeared", appeared)

    def _after_overflow(self, parts: Parts) -> None:
        if parts.watcher.overflowed():
            log.warning("kernel dropped file events; rescanning")
            parts.rescanner.request("kernel event queue overflow")

    def _tidy(self, journal: Journal) -> None:
        housekeeping.tidy(journal, self.config, self.timers.sweep_grace)

    def _report(self, parts: Parts) -> None:
        """STATUS= for `systemctl status`, and WATCHDOG=1 only while the machinery moves.

        The counts query proves the journal answers; the beats prove the settle and watcher
        loops turn and a rescan, if one runs, still makes progress (a generous limit: a big
        tree on NFS is slow). A wedged daemon stops pinging and systemd restarts it.
        """
        try:
            counts = parts.journal.counts()
        except JournalError as exc:
            # A fleet's server restarting: the daemon is alive and waits for it, so the
            # watchdog is still pinged below (a restart by systemd would help nothing).
            self.notifier.status(f"journal unavailable: {exc}")
        else:
            self.notifier.status(summary(counts, parts.gate.reason, dropped_lines()))
        now = time.monotonic()
        self._loops.beat("rescan", self.timers.rescan_stall, now=parts.rescanner.beat)
        stale = self._loops.stale(now)
        if stale:
            log.error("threads not making progress; withholding the watchdog ping", threads=stale)
            return
        self.notifier.watchdog()

    def _reload(self, parts: Parts, jobs: PeriodicJobs) -> None:
        """SIGHUP: re-read the config; keep running on the old one if the new one is bad."""
        parts.gate.reset()  # a paused daemon probes at once: the key may have been fixed
        if self._reload_config is None:
            return
        try:
            new = self._reload_config()
        except ConfigError as exc:
            log.error("SIGHUP: config not reloaded, keeping the running one", error=str(exc))
            return
        if fleet_of(new) != fleet_of(self.config):
            # The open journal knows the old fleet: a share watched under a name it does not
            # know would be uploaded as this host's own files, and maybe by another host too.
            log.error(
                "SIGHUP: config not reloaded, keeping the running one: journal_url, host_id,"
                " host_timeout_seconds and [[watch]] share need a restart"
            )
            return
        for key in _RESTART_ONLY:
            if getattr(new, key) != getattr(self.config, key):
                log.warning("SIGHUP: this setting needs a restart", setting=key)
        for secret in new.secrets:
            register_secret(secret)
        parts.client.set_credentials(new.api_base, new.api_key)
        parts.limiter.set_rate(new.rate_limit_per_second)
        parts.bandwidth.set_rate(new.bandwidth_limit)
        self.work_ready.set()  # a pause lifted by the new limit: idle workers look at once
        parts.settler.settle_seconds = new.settle_seconds
        parts.settler.verify = new.verify_container
        parts.settler.grace = new.incomplete_grace_seconds
        jobs.set_every("rescan", new.rescan_interval_seconds or math.inf)  # from its next turn
        self.config = new
        self._staff_workers(parts)
        added = parts.watcher.set_roots(watch_roots(new))
        # `run --once` has no observers; the daemon rescans what its new observers watch.
        appeared = added if self.once else parts.watcher.ensure_watching()
        if appeared:
            parts.rescanner.request("SIGHUP: new watch folders", appeared)
        log.info("SIGHUP: config reloaded", watches=[str(w.path) for w in new.watches])

    # ---- thread bodies ---------------------------------------------------------------

    def _settle_loop(self, settler: Settler) -> None:
        while not self.stop.is_set():
            self._loops.beat("settle", self.timers.stale_beat)
            if settler.tick():
                self.work_ready.set()
            self.stop.wait(min(1.0, max(0.05, settler.settle_seconds / 4)))

    def _watch_loop(self, watcher: Watcher) -> None:
        while not self.stop.is_set():
            self._loops.beat("watcher", self.timers.stale_beat)
            watcher.pump(timeout=0.5)

    def _work_loop(self, worker: Worker, index: int, parts: Parts) -> None:
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
            held = parts.bandwidth.held_for()
            if held is not None:
                # Queued files are due but held by a `pause` window: look again when it ends
                # (every 2 s until then, for confirmations falling due).
                self.work_ready.wait(min(2.0, max(0.05, held)))
                continue
            due = parts.journal.next_due_at()
            wait = 2.0 if due is None else min(2.0, max(0.05, due - time.time()))
            self.work_ready.wait(wait)
