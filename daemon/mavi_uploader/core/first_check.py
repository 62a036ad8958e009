"""When to ask MAVI first about an upload: after the time recent assets took to reach SUCCESS.

A metadata call right after the bytes land is answered UPLOADING (or 404) and spends one of
the account's calls per second on an answer known to be early. So the first check waits a
delay learned per size class (MAVI takes longer over a large file than a small one):

- a first check that finds SUCCESS says the delay was long enough, maybe too long: the
  class's delay shrinks a little (`SHRINK`), so it keeps tracking MAVI when MAVI gets faster;
- a first check that was early is followed by the usual polls; the time SUCCESS was finally
  seen becomes the class's delay (rounded up by `MARGIN`).

In steady state a few files in a row are confirmed by their first check, then one is early
(one extra call), and the delay stays just above MAVI's time. Pure: the confirmer and the
workers share one instance behind a lock (`FirstChecks`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

MIB = 1024 * 1024
# Upper bounds of the size classes (bytes); the last class has none.
CLASS_BOUNDS = (16 * MIB, 256 * MIB, 4096 * MIB)
SHRINK = 0.95
MARGIN = 1.1
MAX_DELAY = 600.0  # a class's delay never grows past this (later polls back off on their own)


def size_class(size: int | None) -> int:
    """Which size class a file of `size` bytes is in (0 = smallest; unknown: 0)."""
    return sum(1 for bound in CLASS_BOUNDS if (size or 0) >= bound)


@dataclass
class FirstChecks:
    """The learned first-check delay per size class; `initial` seeds a class never observed
    (doubled per class above the smallest: larger files take longer)."""

    initial: float = 3.0
    floor: float = 0.5
    _delays: dict[int, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def delay(self, size: int | None) -> float:
        """Seconds from storage taking the bytes to the first metadata check."""
        cls = size_class(size)
        with self._lock:
            learned = self._delays.get(cls)
        return learned if learned is not None else self.initial * 2**cls

    def observe(self, size: int | None, seconds_to_success: float, first_check: bool) -> None:
        """SUCCESS was seen `seconds_to_success` after the bytes landed, by the first check
        (`first_check`) or by a later poll."""
        cls = size_class(size)
        with self._lock:
            current = self._delays.get(cls, self.initial * 2**cls)
            # Early, then seen at `seconds_to_success`: MAVI needed more than `current`.
            learned = current * SHRINK if first_check else seconds_to_success * MARGIN
            self._delays[cls] = min(MAX_DELAY, max(self.floor, learned))
