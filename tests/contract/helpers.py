"""Small builders for the contract tests (public JournalStore methods only)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from journal_paths import drive
from mavi_uploader.core.records import FileRecord, Observation
from mavi_uploader.core.states import State
from mavi_uploader.journal import JournalStore

# Opens one more store on the same journal (the fixtures open_store and open_reader).
Opener = Callable[[], JournalStore]


def obs(path: str, size: int = 10, mtime_ns: int = 1, root: str = "/w") -> Observation:
    return Observation(path, root, size, mtime_ns)


def sighted(store: JournalStore, path: str, size: int = 10, mtime_ns: int = 1) -> int:
    (rec,) = store.sight([obs(path, size, mtime_ns)])
    return rec.id


def queued(store: JournalStore, path: str, size: int = 10) -> int:
    """A row sighted and settled."""
    file_id = sighted(store, path, size)
    drive(store, file_id, State.QUEUED, "settled")
    return file_id


def at(store: JournalStore, path: str, state: State, **fields: Any) -> FileRecord:
    """A row sighted and moved to `state` by allowed moves (the last one writing `fields`)."""
    return drive(store, sighted(store, path), state, **fields)


def current(store: JournalStore, file_id: int) -> FileRecord:
    rec = store.get(file_id)
    assert rec is not None
    return rec


def in_threads(body: Callable[[int], None], count: int, timeout: float = 60.0) -> None:
    """Run body(0) .. body(count - 1) on threads at once and wait for all of them; a thread
    still running after `timeout` fails the test instead of hanging it."""
    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(t.is_alive() for t in threads), "a claiming thread did not finish"


__all__ = ["Opener", "at", "current", "drive", "in_threads", "obs", "queued", "sighted"]
