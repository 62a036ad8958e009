"""The hand-off runners: deliver what finished files are owed (on_done, webhook), durably.

One runner per kind, each on its own thread, so a slow hook never holds a webhook back. A
pass (`run_once`) claims due hand-offs under a lease until none is due: delivered, or failed
and due again after a backoff, each with an event on its file. The config is read at every
hand-off (a SIGHUP's new command or URL applies to those still owed); a hand-off whose key
has been removed since its file finished is dropped, with an event.
"""

from __future__ import annotations

import os
import random
import socket
import threading
from collections.abc import Callable, Mapping

from mavi_uploader.config.handoff import HandoffConfig
from mavi_uploader.config.timers import Timers
from mavi_uploader.core import handoffs as rules
from mavi_uploader.core.handoffs import Attempt, Handoff, HandoffEnd, HandoffKind
from mavi_uploader.core.records import FileRecord, display_path
from mavi_uploader.core.reporting import file_document
from mavi_uploader.core.retry import Backoff
from mavi_uploader.journal import JournalStore
from mavi_uploader.log import get_logger
from mavi_uploader.upload.hook import Interrupted, run_hook
from mavi_uploader.upload.webhook import body_of, post_webhook

log = get_logger(__name__)
# A lease outlives the longest attempt by this much: only a runner that died loses it.
LEASE_MARGIN = 60.0

RunHook = Callable[[list[str], Mapping[str, str], float, threading.Event], Attempt]


def kinds_owed(config: HandoffConfig) -> tuple[HandoffKind, ...]:
    """The hand-offs a file finishing under `config` owes."""
    kinds = []
    if config.on_done:
        kinds.append(HandoffKind.COMMAND)
    if config.webhook_url:
        kinds.append(HandoffKind.WEBHOOK)
    return tuple(kinds)


class HandoffRunner:
    """Delivers the owed hand-offs of one kind."""

    def __init__(
        self,
        journal: JournalStore,
        kind: HandoffKind,
        config: Callable[[], HandoffConfig],
        stop: threading.Event,
        *,
        timers: Timers = Timers(),  # noqa: B008 - frozen
        rng: random.Random | None = None,
        daemon_env: Mapping[str, str] | None = None,
        run: RunHook = run_hook,
    ) -> None:
        self.kind = kind
        self.owner = f"{socket.gethostname()}:{os.getpid()}:handoff-{kind.value}"
        self._journal, self._config, self._stop, self._timers = journal, config, stop, timers
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not crypto
        self._backoff = Backoff(timers.handoff_first, rules.HANDOFF_BACKOFF.factor,
                                rules.HANDOFF_BACKOFF.cap)  # fmt: skip
        self._env = os.environ if daemon_env is None else daemon_env
        self._run = run

    def run(self) -> None:
        """The thread's body: a pass, then a nap of `handoff_poll` (a stop ends it)."""
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self._timers.handoff_poll)

    def run_once(self) -> int:
        """Claim and deliver due hand-offs until none is due; returns how many were tried."""
        tried = 0
        while not self._stop.is_set():
            claimed = self._journal.claim_handoff(self.owner, self._lease(), [self.kind])
            if claimed is None:
                break
            self._deliver(*claimed)
            tried += 1
        return tried

    def _lease(self) -> float:
        if self.kind is HandoffKind.COMMAND:
            return self._config().on_done_timeout_seconds + LEASE_MARGIN
        return 2 * self._timers.webhook_timeout + LEASE_MARGIN

    def _deliver(self, handoff: Handoff, rec: FileRecord) -> None:
        config = self._config()
        if self.kind not in kinds_owed(config):
            why = rules.dropped_reason(self.kind)
            self._end(handoff, HandoffEnd.DROPPED, why)
            log.warning("hand-off dropped", file_id=rec.id, kind=self.kind.value, reason=why)
            return
        try:
            attempt = self._attempt(handoff, rec, config)
        except Interrupted:
            self._end(handoff, HandoffEnd.RELEASED, "")
            log.info("hand-off cut off by the stop; still owed", file_id=rec.id)
            return
        verdict = rules.judge(
            handoff, attempt, now=self._journal.now(), rng=self._rng, backoff=self._backoff
        )
        end = HandoffEnd.DELIVERED if verdict.delivered else HandoffEnd.FAILED
        self._end(handoff, end, verdict.reason, verdict.last_error, verdict.next_attempt_at)
        shown = display_path(rec.path)
        if verdict.delivered:
            log.info("hand-off delivered", file_id=rec.id, path=shown, kind=self.kind.value)
        else:
            log.warning("hand-off failed", file_id=rec.id, path=shown, reason=verdict.reason)

    def _attempt(self, handoff: Handoff, rec: FileRecord, config: HandoffConfig) -> Attempt:
        if self.kind is HandoffKind.COMMAND:
            assert config.on_done is not None
            env = rules.hook_env(rec, handoff.event, self._env)
            return self._run(list(config.on_done), env, config.on_done_timeout_seconds, self._stop)
        assert config.webhook_url is not None
        owed = self._journal.handoffs([rec.id])
        body = body_of(handoff.event, file_document(rec, owed))
        return post_webhook(
            config.webhook_url, body, event=handoff.event, delivery=handoff.id,
            secret=config.webhook_secret, timeout=self._timers.webhook_timeout,
        )  # fmt: skip

    def _end(
        self,
        handoff: Handoff,
        end: HandoffEnd,
        why: str,
        last_error: str | None = None,
        next_attempt_at: float | None = None,
    ) -> None:
        ours = self._journal.end_handoff(
            handoff.id, self.owner, end, why, last_error=last_error,
            next_attempt_at=next_attempt_at,
        )  # fmt: skip
        if not ours:
            # Our lease lapsed and another runner took it over: it journals its own attempt.
            log.warning("hand-off lease lost", handoff_id=handoff.id, file_id=handoff.file_id)


def runners(
    journal: JournalStore,
    config: Callable[[], HandoffConfig],
    stop: threading.Event,
    timers: Timers,
) -> list[HandoffRunner]:
    """One runner per kind; a kind not configured only drops what is still owed of it."""
    return [HandoffRunner(journal, kind, config, stop, timers=timers) for kind in HandoffKind]
