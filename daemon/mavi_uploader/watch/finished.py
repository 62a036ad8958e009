"""Files that look finished by how they arrived: their writer closed them (IN_CLOSE_WRITE), or
they were moved or linked into the folder whole. Each is handed to the fast path once it has
had `quiet` seconds without another such event, since exporters and taggers often reopen a
file they just closed to patch it (a size, a tag), and a file queued in that moment would be
uploaded twice. Pure: the watcher calls it with its clock."""

from __future__ import annotations

from collections.abc import Iterable


class FinishedFiles:
    def __init__(self, quiet: float) -> None:
        self.quiet = quiet
        self._due: dict[str, float] = {}  # path -> when it is handed over

    def arrived(self, paths: Iterable[str], now: float) -> None:
        """These looked finished at `now`: hand each over `quiet` seconds from now (an
        earlier, still pending arrival is pushed back)."""
        for path in paths:
            self._due[path] = now + self.quiet

    def due(self, now: float) -> list[str]:
        """The paths whose quiet time is over (each handed over once)."""
        ready = [path for path, at in self._due.items() if at <= now]
        for path in ready:
            del self._due[path]
        return ready

    def next_in(self, now: float) -> float | None:
        """Seconds until the next hand-over, or None when nothing waits."""
        return max(0.0, min(self._due.values()) - now) if self._due else None
