"""The daemon's loop threads and periodic jobs: guarded starts, beats, who died, what is due.

Every loop (settle, watcher, rescans, workers) runs in a guarded thread: an Exception is logged
and the loop started again after a pause. Whatever escapes the guard (a BaseException, a bug
in the guard) ends the thread; the supervisor sees it among `dead()` and the daemon exits
non-zero, so a service manager restarts it and `run --once` ends, instead of a daemon that
says it is running while nothing moves.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from mavi_uploader.journal import JournalError
from mavi_uploader.log import get_logger

log = get_logger(__name__)
_JOURNAL_WARN_EVERY = 30.0

__all__ = ["Loops", "PeriodicJobs", "summary"]


@dataclass
class _Job:
    name: str
    every: float
    run: Callable[[], None]
    due: float


class PeriodicJobs:
    """The supervisor's timed jobs: one list of (every, job), run on the main thread.

    `run_due(now)` is one pass (tests call it with their own clock): every job whose time has
    come runs, in the order added, and is due again `every` seconds after this pass; `every`
    0 runs it at every pass. A job runs once per pass however late the pass is: missed turns
    are not made up in a burst.
    """

    def __init__(self) -> None:
        self._jobs: list[_Job] = []

    def add(self, name: str, every: float, job: Callable[[], None], *, first: float) -> None:
        """Run `job` every `every` seconds, the first time at `first` (a clock reading)."""
        self._jobs.append(_Job(name, every, job, first))

    @property
    def names(self) -> list[str]:
        return [job.name for job in self._jobs]

    def set_every(self, name: str, every: float) -> None:
        """A new period for `name` (if there is such a job), from its next run on."""
        for job in self._jobs:
            if job.name == name:
                job.every = every

    def run_due(self, now: float) -> list[str]:
        """Run the jobs due at `now`; returns their names."""
        ran = []
        for job in self._jobs:
            if now >= job.due:
                job.due = now + job.every
                try:
                    job.run()
                except JournalError as exc:
                    # The journal is away: the job runs again at its next turn.
                    log.warning("journal unavailable; job skipped", job=job.name, error=str(exc))
                ran.append(job.name)
        return ran


def summary(counts: dict[str, int], paused: str | None = None, lost_lines: int = 0) -> str:
    """One line for `systemctl status`: the non-zero states, the pause, lost log lines."""
    parts = [f"{n} {state}" for state, n in counts.items() if n]
    text = ", ".join(parts) or "no files yet"
    if lost_lines:
        text += f"; {lost_lines} log lines could not be written"
    return f"PAUSED ({paused}); {text}" if paused else text


class Loops:
    """The daemon's loop threads by name, their beats, and the ones that ended cleanly."""

    def __init__(self, stop: threading.Event, guard_pause: float = 1.0) -> None:
        self._stop = stop
        self._guard_pause = guard_pause
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._ended: set[str] = set()  # returned normally (a worker retired, the daemon stops)
        self._beats: dict[str, tuple[float, float]] = {}  # name -> (last turn, stale after)

    def spawn(self, name: str, body: Callable[[], None]) -> None:
        thread = threading.Thread(target=self._guarded(name, body), name=name, daemon=True)
        with self._lock:  # held across start(): a thread that ends at once is seen as ended
            self._ended.discard(name)
            thread.start()
            self._threads[name] = thread

    def _guarded(self, name: str, body: Callable[[], None]) -> Callable[[], None]:
        said: dict[str, float] = {}  # thread -> when a journal outage may be logged again

        def run() -> None:
            while not self._stop.is_set():
                try:
                    body()
                    break
                except JournalError as exc:
                    # The journal is away (a fleet's server restarting, a full disk): said
                    # now and then, not with a traceback every second.
                    now = time.monotonic()
                    if now >= said.get(name, 0.0):
                        said[name] = now + _JOURNAL_WARN_EVERY
                        with contextlib.suppress(Exception):
                            log.warning(
                                "journal unavailable; retrying", thread=name, error=str(exc)
                            )
                    self._stop.wait(self._guard_pause)
                    continue
                except Exception:
                    # Keep the daemon up (e.g. disk full for a moment); retry after a pause.
                    # Logging must not be what kills the thread either.
                    with contextlib.suppress(Exception):
                        log.exception("thread error; continuing", thread=name)
                    self._stop.wait(self._guard_pause)
            with self._lock:
                self._ended.add(name)

        return run

    def beat(self, name: str, stale_after: float, now: float | None = None) -> None:
        """`name` made progress; it is stale once silent for `stale_after` seconds."""
        self._beats[name] = (time.monotonic() if now is None else now, stale_after)

    def stale(self, now: float) -> list[str]:
        return [name for name, (at, limit) in list(self._beats.items()) if now - at > limit]

    def dead(self) -> list[str]:
        """Loops whose thread ended without returning (what escaped the guard killed it)."""
        with self._lock:
            return [
                name
                for name, thread in self._threads.items()
                if not thread.is_alive() and name not in self._ended
            ]

    def join(self, grace: float) -> None:
        """Wait for every thread, `grace` seconds in all (they are daemon threads)."""
        deadline = time.monotonic() + grace
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
