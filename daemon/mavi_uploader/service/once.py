"""`run --once`: is the run over, and with which exit code? (asked at every supervisor pass)"""

from __future__ import annotations

import time
from dataclasses import dataclass

from mavi_uploader.core.records import FileRecord, State, display_path
from mavi_uploader.core.reporting import mavi_says
from mavi_uploader.journal import JournalStore as Journal
from mavi_uploader.log import get_logger
from mavi_uploader.mavi.client import MaviClient
from mavi_uploader.mavi.ratelimit import BandwidthLimiter
from mavi_uploader.upload.pause import PauseGate
from mavi_uploader.watch.rescans import Rescanner

log = get_logger(__name__)


@dataclass(frozen=True)
class OnceEnd:
    """What decides the end of a one-shot run; `outcome()` is None while it goes on."""

    journal: Journal
    gate: PauseGate
    rescanner: Rescanner
    client: MaviClient
    unreachable: float  # Timers.once_unreachable
    bandwidth: BandwidthLimiter

    def outcome(self, confirm_timeout: float) -> int | None:
        """The exit code once the run is over (0 all handled, 1 something is not), else None.

        `confirm_timeout`: once_confirm_timeout_seconds of the config now (SIGHUP may change it).
        """
        if self.gate.paused():
            log.error("stopping: uploads are paused", reason=self.gate.reason)
            return 1
        if not self.journal.has_unfinished() and not self.rescanner.busy:
            owed, failing = self.journal.handoff_counts()
            if owed > failing:
                return None  # every hand-off gets its first attempt; a failed one stays owed
            counts = self.journal.counts()
            log.info("all files handled", **counts)
            return 1 if counts[State.FAILED.value] else 0
        if self._held_by_the_timetable():
            return 1
        overdue = self._confirmations_overdue(confirm_timeout)
        if overdue:
            log.error(
                "stopping: MAVI has not confirmed these files within"
                " once_confirm_timeout_seconds; they stay confirming for the next run",
                timeout_s=confirm_timeout,
                files=[f"{display_path(r.path)}: {mavi_says(r) or 'no answer'}" for r in overdue],
            )
            return 1
        # The daemon waits out any outage; a one-shot run (cron, a script) must end instead.
        silent = self.client.unreachable_for()
        if silent >= self.unreachable:
            log.error(
                "stopping: MAVI or its storage has not answered; unfinished files stay"
                " queued for the next run",
                seconds=round(silent),
                **{k: v for k, v in self.journal.counts().items() if v},
            )
            return 1
        return None

    def _held_by_the_timetable(self) -> bool:
        """Only queued files left, in a bandwidth `pause` window: a one-shot run (cron) does
        not sit the window out; the next run sends them."""
        if not self.bandwidth.holding() or self.rescanner.busy:
            return False
        counts = self.journal.counts()
        if any(counts[s.value] for s in (State.SETTLING, State.UPLOADING, State.CONFIRMING)):
            return False
        until = self.bandwidth.in_force().until
        log.error(
            "stopping: bandwidth_limit pauses new uploads; the queued files stay queued for"
            " the next run",
            until=until.isoformat(timespec="minutes") if until else None,
            queued=counts[State.QUEUED.value],
        )
        return True

    def _confirmations_overdue(self, confirm_timeout: float) -> list[FileRecord]:
        """The confirming files, once nothing else is left to do and all of them have waited
        longer than once_confirm_timeout_seconds since storage took them."""
        if self.journal.has_work_besides_confirming():
            return []
        confirming = self.journal.in_states([State.CONFIRMING])
        deadline = time.time() - confirm_timeout
        if all((r.accepted_at or 0.0) <= deadline for r in confirming):
            return confirming
        return []
