"""The per-chunk hook of a hash pass or a send: stop, bandwidth, lease renewal, progress."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from mavi_uploader.core.records import FileRecord
from mavi_uploader.mavi.ratelimit import BandwidthLimiter, Stopped
from mavi_uploader.upload.ledger import Ledger


class LeaseLost(Exception):
    """Another worker took our file (our lease ran out, e.g. the machine slept): stop at once."""


@dataclass(frozen=True)
class Pacing:
    """What every chunk of a worker's reads and sends answers to."""

    ledger: Ledger
    stop: threading.Event
    bandwidth: BandwidthLimiter
    clock: Callable[[], float]
    lease_seconds: float  # renewed every `progress_every` while bytes move
    progress_every: float

    def hook(self, rec: FileRecord, sending: bool) -> Callable[[int], None]:
        """Per-chunk hook: honour stop, renew the lease and publish progress now and then,
        and at the last chunk: a small file is all sent long before the first 2 s are up,
        and `status` must not show it at 0% while storage takes its time to answer."""
        sent = 0
        last = self.clock()

        def hook(n: int) -> None:
            nonlocal sent, last
            if self.stop.is_set():
                raise Stopped
            if sending:
                self.bandwidth.consume(n)
            sent += n
            now = self.clock()
            finished = sending and sent >= (rec.size or 0)
            if now - last >= self.progress_every or finished:
                last = now
                fields: dict[str, object] = {"lease_expires_at": now + self.lease_seconds}
                if sending:
                    fields["bytes_sent"] = sent
                    fields["progress_at"] = now
                if not self.ledger.note(rec, **fields):
                    raise LeaseLost

        return hook
