"""The daemon's parts, built from the config around one journal (service/daemon.py runs them)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from mavi_uploader.config.model import Config
from mavi_uploader.config.timers import Timers
from mavi_uploader.config.timetable import LocalClock
from mavi_uploader.core.decisions import Patience
from mavi_uploader.core.first_check import FirstChecks
from mavi_uploader.journal import JournalStore, shared_rate_slots
from mavi_uploader.mavi.client import MaviClient
from mavi_uploader.mavi.ratelimit import BandwidthLimiter, RateLimiter
from mavi_uploader.mavi.tally import Tally
from mavi_uploader.service.handoffs import kinds_owed
from mavi_uploader.upload.pause import PauseGate
from mavi_uploader.upload.worker import WorkerSettings
from mavi_uploader.watch.rescans import Rescanner
from mavi_uploader.watch.roots import watch_roots
from mavi_uploader.watch.settle import Settler
from mavi_uploader.watch.watcher import Watcher


def worker_settings(cfg: Config) -> WorkerSettings:
    patience = Patience(max_resends=cfg.max_resends)
    return WorkerSettings(
        cfg.dedupe, cfg.after_upload, cfg.done_dir, patience, cfg.upload_order,
        kinds_owed(cfg.handoff),
    )  # fmt: skip


@dataclass
class Parts:
    journal: JournalStore
    limiter: RateLimiter
    bandwidth: BandwidthLimiter
    client: MaviClient
    gate: PauseGate
    watcher: Watcher
    settler: Settler
    rescanner: Rescanner
    first_checks: FirstChecks  # learned by the confirmer, used by every worker


def assemble(
    cfg: Config,
    timers: Timers,
    journal: JournalStore,
    stop: threading.Event,
    on_queued: Callable[[], None] = lambda: None,
    tally: Tally | None = None,
) -> Parts:
    """Everything but the workers (the daemon staffs those) around `journal`. In a fleet,
    the account's rate limit, the pause and the clock are the fleet's, through the journal.
    `on_queued` wakes the workers when the watcher's fast path queues a file; `tally` counts
    the client's requests and uploads (the daemon's metrics)."""
    slots = shared_rate_slots(journal)  # None on SQLite: this process's own slots
    limiter = RateLimiter(cfg.rate_limit_per_second, stop=stop, slots=slots)
    # The journal's clock: in a fleet, the database's, which every host shares.
    settler = Settler(
        journal,
        cfg.settle_seconds,
        clock=journal.now,
        unreadable_retry=timers.unreadable_retry,
        verify=cfg.verify_container,
        grace=cfg.incomplete_grace_seconds,
    )

    def settle_closed(paths: list[str]) -> None:
        if settler.settle_closed(paths):
            on_queued()

    watcher = Watcher(
        watch_roots(cfg), journal, on_closed=settle_closed, closed_quiet=timers.closed_quiet
    )
    return Parts(
        journal=journal,
        limiter=limiter,
        bandwidth=BandwidthLimiter(
            cfg.bandwidth_limit, stop=stop, now=LocalClock(timers.timetable_shift)
        ),
        client=MaviClient(
            cfg.api_base,
            cfg.api_key,
            limiter=limiter,
            timeout=(timers.connect_timeout, timers.read_timeout),
            tally=tally,
        ),
        gate=PauseGate(
            journal, probe_interval=timers.pause_probe_every, fleet=journal.kind != "sqlite"
        ),
        watcher=watcher,
        settler=settler,
        rescanner=Rescanner(watcher, stop, retry_seconds=timers.rescan_retry),
        first_checks=FirstChecks(initial=timers.first_check),
    )
