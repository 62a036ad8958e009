"""Retry plans: how long to wait before the next attempt (pure; the row keeps the count)."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

from mavi_uploader.config.timers import Timers


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with "equal jitter": between half and all of the capped delay.

    Jitter keeps several workers that failed together from retrying together.
    """

    base: float = 2.0
    factor: float = 2.0
    cap: float = 600.0

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        # Grow the exponent only until the cap is reached: 2.0 ** 1024 overflows, and offline
        # retries keep counting attempts for as long as the network is down.
        exponent = max(0, attempt - 1)
        raw = self.base
        while exponent > 0 and raw < self.cap:
            raw *= self.factor
            exponent -= 1
        raw = min(self.cap, raw)
        wait = rng.uniform(raw / 2, raw)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait


# Server-side failures (5xx, timeouts) count towards giving up; a dead network does not:
# a camera cart offline overnight must not wake up to a folder of "failed" files.
# 1, 2, 4 ... 300 s: a blip costs seconds, and 15 failures span about half an hour of outage.
UPLOAD_BACKOFF = Backoff(base=Timers.retry_first, factor=2.0, cap=300.0)
MAX_SERVER_FAILURES = 15
# Confirmation polls: fast at first (most uploads are SUCCESS within seconds), then relaxed.
CONFIRM_BACKOFF = Backoff(base=Timers.confirm_first, factor=2.0, cap=60.0)


@dataclass(frozen=True)
class Backoffs:
    """The two backoffs a worker uses; their first delays are timers (tests shorten them)."""

    upload: Backoff = UPLOAD_BACKOFF
    confirm: Backoff = CONFIRM_BACKOFF

    @classmethod
    def starting_at(cls, retry_first: float, confirm_first: float) -> Backoffs:
        return cls(
            dataclasses.replace(UPLOAD_BACKOFF, base=retry_first),
            dataclasses.replace(CONFIRM_BACKOFF, base=confirm_first),
        )
