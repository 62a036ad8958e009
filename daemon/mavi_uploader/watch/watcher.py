"""Watch folders (watchdog) and rescan them; every candidate file becomes a journal sighting.

watchdog calls our handler on its dispatcher thread, so the handler only drops the path in a
queue. `Watcher.pump()` (the watcher thread) stats, filters and journals them in batches.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from mavi_uploader.config.timers import Timers
from mavi_uploader.core import rules
from mavi_uploader.core.records import Observation, display_path
from mavi_uploader.journal import JournalError, JournalStore
from mavi_uploader.log import get_logger
from mavi_uploader.watch.finished import FinishedFiles
from mavi_uploader.watch.links import LinkNotices
from mavi_uploader.watch.roots import WatchRoot

log = get_logger(__name__)
BATCH_SIZE = 500
_SAY_AGAIN_AFTER = 30.0  # seconds between two "cannot journal" lines of one outage
_WATCHDOG_LOGGERS = ("watchdog.observers.inotify_c", "watchdog.observers.inotify")
# errno -> the sysctl to raise when inotify runs out of it.
_INOTIFY_LIMITS = {
    errno.ENOSPC: "fs.inotify.max_user_watches",
    errno.EMFILE: "fs.inotify.max_user_instances",
}


def _identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of a directory, or None when there is none at `path`."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def _observing(observer: BaseObserver) -> bool:
    """Still watching? watchdog's inotify emitter stops by itself when its folder is deleted
    while the observer thread lives on; a folder re-created with the same inode needs a new
    one, so look at the emitters, not the observer."""
    emitters = observer.emitters
    return observer.is_alive() and bool(emitters) and all(e.is_alive() for e in emitters)


def _quietly_stop(observer: BaseObserver) -> None:
    try:
        observer.stop()
        if observer.is_alive():
            observer.join(timeout=5)
    except (OSError, RuntimeError) as exc:
        log.debug("observer stop failed", error=str(exc))


class _Seen(NamedTuple):
    """What an event says of a path: a folder (walk it), and whether it looks finished by how
    it arrived (its writer closed it, or it was moved or linked in whole)."""

    is_dir: bool = False
    finished: bool = False

    def __or__(self, other: object) -> _Seen:
        if not isinstance(other, _Seen):
            return NotImplemented
        return _Seen(self.is_dir or other.is_dir, self.finished or other.finished)


# inotify's IN_CLOSE_WRITE ("closed"), IN_MOVED_TO ("moved": rsync, Syncthing and browsers
# write a temp name and rename it) and IN_CREATE ("created": also a hard link, or a folder
# moved in). Polling observers never say "closed". A file still open for writing or not
# whole fails the fast path's own checks, so a false "finished" costs a look, nothing more.
_FINISHING = ("closed", "moved", "created")


_Inbox = queue.SimpleQueue[tuple[WatchRoot, str, _Seen]]


class _Handler(FileSystemEventHandler):
    def __init__(self, root: WatchRoot, inbox: _Inbox, *, polling: bool = False):
        self._root = root
        self._inbox = inbox
        # A polled folder (a network share) may have writers on other machines, whom no
        # probe sees: its files keep the settle rule, whatever the event.
        self._finishing = () if polling else _FINISHING

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("deleted", "opened", "closed_no_write"):
            return
        if event.is_directory and event.event_type not in ("created", "moved"):
            return  # a folder's "modified" fires on every write inside it
        path = event.dest_path if event.event_type == "moved" else event.src_path
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        # Directory events matter too: a folder moved in brings files that raise no events.
        seen = _Seen(event.is_directory, event.event_type in self._finishing)
        self._inbox.put((self._root, path, seen))


class _OverflowAlarm(logging.Handler):
    """watchdog (7.1 on; before, IN_Q_OVERFLOW was dropped unseen) tells its handlers nothing
    of a kernel event-queue overflow, only logs it: catch that, so the daemon rescans for the
    dropped events. tests/test_watcher_resilience.py makes a real overflow to keep it true."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.tripped = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.tripped.set()


class Watcher:
    """Observers for every watch root plus the start-up and periodic rescans."""

    def __init__(
        self,
        roots: Sequence[WatchRoot],
        journal: JournalStore,
        on_closed: Callable[[list[str]], object] | None = None,
        closed_quiet: float = Timers.closed_quiet,
    ) -> None:
        """`on_closed` gets, once journaled and quiet for `closed_quiet` seconds, the files
        that look finished (the fast path: watch/settle.py `Settler.settle_closed`)."""
        self._roots = list(roots)
        self._journal = journal
        self._on_closed = on_closed
        self._finished = FinishedFiles(closed_quiet)
        self._inbox: _Inbox = queue.SimpleQueue()
        self._observers: dict[str, tuple[BaseObserver, tuple[int, int]]] = {}
        self._missing: set[str] = set()  # warned about once, watched as soon as they appear
        self._unlistable: set[str] = set()  # folders we may not read: looked at again later
        self._forced_polling: set[str] = set()  # inotify ran out: poll these instead
        self._alarm = _OverflowAlarm()
        self._unjournaled: dict[tuple[WatchRoot, str], _Seen] = {}
        self._quiet_until = 0.0  # a failing journal is logged again after this (monotonic)
        self._links = LinkNotices()

    def start(self) -> None:
        """Schedule every root that exists; missing ones are retried by `ensure_watching`."""
        for name in _WATCHDOG_LOGGERS:
            logging.getLogger(name).addHandler(self._alarm)
        self.ensure_watching()

    def overflowed(self) -> bool:
        """True once after the kernel dropped events (the caller should rescan everything)."""
        if self._alarm.tripped.is_set():
            self._alarm.tripped.clear()
            return True
        return False

    def ensure_watching(self) -> list[WatchRoot]:
        """(Re)start observers for roots that exist and are not watched; returns those.

        A root that was deleted (or replaced by a new folder of the same name) loses its
        observer; it is watched again, and should be rescanned, once it is back.
        """
        self._restart_where_folders_opened()
        started = []
        for root in self._roots:
            identity = _identity(root.root)
            current = self._observers.get(root.root)
            if current is not None:
                if identity == current[1] and _observing(current[0]):
                    continue
                log.warning(
                    "watch folder disappeared or was replaced", path=display_path(root.root)
                )
                self._stop_observer(root.root)
            if identity is None:
                self._warn_missing(root)
                continue
            self._missing.discard(root.root)
            observer = self._start_observer(root)
            if observer is not None:
                self._observers[root.root] = (observer, identity)
                started.append(root)
        return started

    def _restart_where_folders_opened(self) -> None:
        """A folder that could not be listed has no inotify watch (nor do its sub-folders):
        once it is readable, restart its root's observer so the caller rescans that root."""
        for folder in list(self._unlistable):
            if os.path.isdir(folder) and not os.access(folder, os.R_OK | os.X_OK):
                continue
            self._unlistable.discard(folder)
            for root in self._roots:
                if root.root in self._observers and rules.relative_parts(folder, root.root):
                    log.info("folder became readable; rescanning", path=display_path(folder))
                    self._stop_observer(root.root)

    def _warn_missing(self, root: WatchRoot) -> None:
        if root.root not in self._missing:
            self._missing.add(root.root)
            if os.path.lexists(root.root):  # `run` refuses this at start; it was replaced since
                log.error("watch path is not a folder", path=display_path(root.root))
                return
            log.warning("watch folder does not exist (yet)", path=display_path(root.root))

    def set_roots(self, roots: Sequence[WatchRoot]) -> list[WatchRoot]:
        """Replace the watch list (config reload); returns the roots that are new."""
        keep = {r.root for r in roots}
        old = {r.root: r for r in self._roots}
        for key in [k for k in self._observers if k not in keep or old.get(k) not in roots]:
            self._stop_observer(key)  # gone, or its options changed
        self._missing &= keep
        self._roots = list(roots)
        return [r for r in roots if old.get(r.root) != r]

    def _start_observer(self, root: WatchRoot) -> BaseObserver | None:
        polling = root.poll or root.root in self._forced_polling
        observer: BaseObserver = (
            PollingObserver(timeout=root.poll_interval) if polling else Observer()
        )
        observer.daemon = True
        try:
            handler = _Handler(root, self._inbox, polling=polling)
            observer.schedule(handler, root.root, recursive=root.recursive)
            observer.start()
        except OSError as exc:
            _quietly_stop(observer)
            limit = _INOTIFY_LIMITS.get(exc.errno or 0)
            if polling or limit is None:
                log.error("cannot watch folder", path=display_path(root.root), error=str(exc))
                return None
            log.error(
                "inotify limit reached; polling this folder instead",
                path=display_path(root.root),
                error=str(exc),
                fix=f"raise it: sudo sysctl -w {limit}=524288 (and persist it in "
                "/etc/sysctl.d/), then restart mavi-uploader",
            )
            self._forced_polling.add(root.root)
            return self._start_observer(root)
        log.info(
            "watching", path=display_path(root.root), recursive=root.recursive, polling=polling
        )
        return observer

    def _stop_observer(self, key: str) -> None:
        observer, _ = self._observers.pop(key)
        _quietly_stop(observer)

    def stop(self) -> None:
        for key in list(self._observers):
            self._stop_observer(key)
        for name in _WATCHDOG_LOGGERS:
            logging.getLogger(name).removeHandler(self._alarm)

    def rescan(
        self,
        roots: Sequence[WatchRoot] | None = None,
        on_progress: Callable[[], None] | None = None,
    ) -> int:
        """Walk the roots and journal candidates not already handled; returns sightings.
        `on_progress` runs at every folder and file (a beat; it may raise to cut the walk)."""
        count = 0
        tick = on_progress or (lambda: None)
        for root in roots if roots is not None else list(self._roots):
            tick()
            if not os.path.isdir(root.root):
                self._warn_missing(root)  # `run --once` has no observers to warn
                continue
            handled = self._journal.handled_index(root.root)
            batch: list[Observation] = []
            for path in root.walk(unlistable=self._unlistable, on_folder=tick):
                tick()
                obs = root.observe(path, folders_checked=True, on_refused_link=self._links.refused)
                if obs is None or handled.get(path) == (obs.size, obs.mtime_ns):
                    continue
                batch.append(obs)
                if len(batch) >= BATCH_SIZE:
                    count += self._journal_batch(batch)
                    batch = []
            if batch:
                count += self._journal_batch(batch)
        return count

    def pump(self, timeout: float) -> int:
        """Journal the events that arrived (waiting up to `timeout` for the first one), then
        hand the fast path what looks finished and has been quiet long enough."""
        pending, self._unjournaled = self._unjournaled, {}
        wait = self._finished.next_in(time.monotonic())
        try:
            root, path, seen = self._inbox.get(
                timeout=timeout if wait is None else min(wait, timeout)
            )
            pending[(root, path)] = pending.get((root, path), _Seen()) | seen
        except queue.Empty:
            if not pending:
                self._hand_over_finished()
                return 0
        deadline = time.monotonic() + 0.05  # gather a burst into one transaction
        while len(pending) < BATCH_SIZE and time.monotonic() < deadline:
            try:
                root, path, seen = self._inbox.get_nowait()
            except queue.Empty:
                break
            pending[(root, path)] = pending.get((root, path), _Seen()) | seen
        batch: list[Observation] = []
        finished: list[str] = []
        for (root, path), seen in pending.items():
            found = list(self._observe_tree(root, path)) if seen.is_dir else []
            if not seen.is_dir:
                obs = root.observe(path, on_refused_link=self._links.refused)
                found = [obs] if obs is not None else []
            batch.extend(found)
            if seen.finished:  # a folder moved in brings files as whole as they will be
                finished.extend(obs.path for obs in found)
        try:
            count = self._journal_batch(batch) if batch else 0
        except JournalError as exc:
            # Disk full, or the journal briefly unwritable (a fleet's server restarting):
            # keep the paths for the next pump; said now and then, not at every pump.
            now = time.monotonic()
            if now >= self._quiet_until:
                self._quiet_until = now + _SAY_AGAIN_AFTER
                log.error("cannot journal new files; will retry", error=str(exc), files=len(batch))
            self._unjournaled.update(pending)
            time.sleep(min(timeout, 1.0))
            return 0
        self._finished.arrived(finished, time.monotonic())
        self._hand_over_finished()
        return count

    def _hand_over_finished(self) -> None:
        due = self._finished.due(time.monotonic())
        if due and self._on_closed is not None:
            self._on_closed(due)

    def _journal_batch(self, batch: list[Observation]) -> int:
        records = self._journal.sight(batch)
        for rec in records:
            log.info(
                "transition",
                file_id=rec.id,
                path=display_path(rec.path),
                state=rec.state.value,
                size=rec.size,
            )
        return len(records)

    def _observe_tree(self, root: WatchRoot, path: str) -> Iterator[Observation]:
        if rules.directory_ignored(path, root.root, root.ignore, root.recursive):
            return
        for file_path in root.walk(path, self._unlistable):
            obs = root.observe(file_path, folders_checked=True, on_refused_link=self._links.refused)
            if obs is not None:
                yield obs


__all__ = ["Watcher"]
