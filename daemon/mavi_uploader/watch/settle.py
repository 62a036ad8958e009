"""When a seen file is whole: the settle tick (size and mtime held still for settle_seconds,
no process holds it open for writing, its container complete) and the fast path (its writer
closed it, nobody else holds it open for writing, its container complete: queued at once)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

from mavi_uploader.config.timers import Timers
from mavi_uploader.core import container
from mavi_uploader.core.container import Verdict
from mavi_uploader.core.records import FileRecord, State, display_path
from mavi_uploader.core.writers import Probe, WriterProbe
from mavi_uploader.journal import JournalStore
from mavi_uploader.log import get_logger

log = get_logger(__name__)
BATCH = 500
_TOO_SHORT_TO_TELL = 16  # bytes
ContainerCheck = Callable[[str, int, "str | None"], Verdict]


def can_read(path: str) -> None:
    """Raise OSError unless we can open the file for reading (root or not)."""
    with open(path, "rb"):
        pass


class Settler:
    """One `tick()` looks at every settling file once; tests drive it with a fake clock."""

    def __init__(
        self,
        journal: JournalStore,
        settle_seconds: float,
        *,
        clock: Callable[[], float] = time.time,
        stat: Callable[[str], os.stat_result] = os.stat,
        check_readable: Callable[[str], None] = can_read,
        probe: Probe | None = None,
        unreadable_retry: float = Timers.unreadable_retry,
        verify: bool = True,
        grace: float = 900.0,
        check_container: ContainerCheck = container.check,
    ) -> None:
        self.verify, self.grace = verify, grace  # verify_container, incomplete_grace_seconds
        self._check_container = check_container
        self._journal = journal
        self._unreadable_retry = unreadable_retry
        self.settle_seconds = settle_seconds
        self._clock = clock
        self._stat = stat
        self._check_readable = check_readable
        self._probe = probe or WriterProbe()

    def tick(self) -> int:
        """Advance settling files; returns how many were queued."""
        queued = 0
        now = self._clock()
        due = [
            rec
            for rec in self._journal.in_states([State.SETTLING])
            if rec.next_attempt_at is None or rec.next_attempt_at <= now
        ]
        # A burst of thousands of files: one commit per chunk, not one fsync per file.
        for start in range(0, len(due), BATCH):
            with self._journal.batch(), self._probe.batch():
                queued += sum(self._settle_one(rec, now) for rec in due[start : start + BATCH])
        return queued

    def settle_closed(self, paths: Sequence[str]) -> int:
        """The fast path: files their writer just closed (inotify's IN_CLOSE_WRITE), queued at
        once when no process holds them open for writing and their container is complete;
        returns how many. Anything else is left to the tick, which says why it waits.

        Not for share files: a writer on another host closes nothing we can see, and our
        close event says nothing of it. Not for types without a container check (MTS,
        MPG...): a close alone does not prove a recording ended (segmenting writers close
        and reopen), so they keep the settle rule."""
        if not self.verify:
            return 0
        queued = 0
        now = self._clock()
        with self._journal.batch(), self._probe.batch():
            for path in paths:
                latest = self._journal.by_path(path)[-1:]
                if latest and latest[0].state is State.SETTLING and latest[0].share is None:
                    queued += self._settle_closed_one(latest[0], now)
        return queued

    def _settle_closed_one(self, rec: FileRecord, now: float) -> int:
        try:
            before = self._stat(rec.path)
            if self._probe(rec.path) is not None:
                return 0
            self._check_readable(rec.path)
            verdict = self._check_container(rec.path, before.st_size, None)
            after = self._stat(rec.path)
        except OSError:
            return 0  # the tick looks again, and journals why
        if not (verdict.complete and verdict.final) or (after.st_size, after.st_mtime_ns) != (
            before.st_size,
            before.st_mtime_ns,
        ):
            return 0  # written to while we looked: a writer is back; the tick decides
        moved = self._journal.transition(
            rec.id,
            State.QUEUED,
            f"closed by its writer, not open for writing elsewhere; {verdict.reason}",
            expect=State.SETTLING,
            next_attempt_at=None,
            last_error=None,
            size=after.st_size,
            mtime_ns=after.st_mtime_ns,
            stable_since=now,
        )
        if moved is None:
            return 0
        log.info(
            "transition", file_id=rec.id, path=display_path(rec.path), state="queued", fast=True
        )
        return 1

    def _settle_one(self, rec: FileRecord, now: float) -> int:
        try:
            st = self._stat(rec.path)
        except FileNotFoundError:
            self._journal.transition(
                rec.id, State.VANISHED, "file disappeared while settling", expect=State.SETTLING
            )
            log.info("transition", file_id=rec.id, path=display_path(rec.path), state="vanished")
            return 0
        except OSError as exc:
            self._defer(rec, now, f"cannot stat the file: {exc.strerror}")
            return 0
        if not rec.describes(st):
            # Still being written: start the quiet period again.
            self._journal.update(rec.id, size=st.st_size, mtime_ns=st.st_mtime_ns, stable_since=now)
            return 0
        # A share file is probed at every tick: the fleet's other hosts cannot see a writer
        # on this one, so the quiet period is restarted as long as this host sees it (their
        # ticks then find it too young). Other files only once they held still: most ticks
        # probe nothing.
        shared = rec.share is not None
        if shared and self._wait_for_writer(rec, now):
            return 0
        if now - (rec.stable_since or now) < self.settle_seconds:
            return 0
        try:
            self._check_readable(rec.path)
        except OSError as exc:
            self._defer(rec, now, f"cannot read the file: {exc.strerror} (check permissions)")
            return 0
        if not shared and self._wait_for_writer(rec, now):
            return 0
        if self._incomplete(rec, st.st_size, now):
            return 0
        if shared and not self._still_quiet(rec):
            return 0
        moved = self._journal.transition(
            rec.id,
            State.QUEUED,
            f"unchanged for {self.settle_seconds:g}s ({st.st_size} bytes)",
            expect=State.SETTLING,
            next_attempt_at=None,
            last_error=None,
        )
        if moved is None:
            return 0
        log.info("transition", file_id=rec.id, path=display_path(rec.path), state="queued")
        return 1

    def _wait_for_writer(self, rec: FileRecord, now: float) -> bool:
        """Is some process holding the file open for writing? Then it waits (a camera paused
        with its file open is not finished, however long it is still); only a change of
        writer is journaled, and on a share the quiet period starts again."""
        writer = self._probe(rec.path)
        if writer is None:
            return False
        if rec.last_error != writer.reason:
            where = display_path(rec.path)
            log.info("waiting for its writer", file_id=rec.id, path=where, reason=writer.reason)
        if rec.share is not None:
            self._journal.update(rec.id, last_error=writer.reason, stable_since=now)
        elif rec.last_error != writer.reason:
            self._journal.update(rec.id, last_error=writer.reason)
        return True

    def _incomplete(self, rec: FileRecord, size: int, now: float) -> bool:
        """Is the file's container still incomplete (a camera that will append its `moov`)?
        It waits, saying why; still incomplete `grace` seconds after it held still, it fails
        (never uploaded: `retry` checks it again, `enqueue --no-verify` sends it as it is)."""
        # Too short to hold any container's signature: no video, and no camera stops there
        # (an empty file is the worker's to skip).
        if not self.verify or size < _TOO_SHORT_TO_TELL:
            return False
        try:
            verdict = self._check_container(rec.path, size, None)
        except OSError as exc:
            self._defer(rec, now, f"cannot read the file: {exc.strerror} (check permissions)")
            return True
        if not verdict.incomplete:
            return False
        why = f"incomplete: {verdict.reason}"
        still_for = now - (rec.stable_since or now)
        if still_for >= self.settle_seconds + self.grace:
            self._journal.transition(
                rec.id,
                State.FAILED,
                f"{why} (still after {still_for:.0f}s; never uploaded)",
                expect=State.SETTLING,
                last_error=why,
            )
            log.warning("incomplete file failed", file_id=rec.id, path=display_path(rec.path))
        elif rec.last_error != why:
            log.info("waiting for its container", file_id=rec.id, reason=why)
            self._journal.update(rec.id, last_error=why)
        return True

    def _still_quiet(self, rec: FileRecord) -> bool:
        """A share file's row as this tick read it may be stale: another host may have seen
        its writer since. Read it again just before queueing."""
        fresh = self._journal.get(rec.id)
        return fresh is not None and fresh.stable_since == rec.stable_since

    def _defer(self, rec: FileRecord, now: float, why: str) -> None:
        if rec.last_error != why:
            log.warning("file not ready", file_id=rec.id, path=display_path(rec.path), reason=why)
        self._journal.update(rec.id, last_error=why, next_attempt_at=now + self._unreadable_retry)
