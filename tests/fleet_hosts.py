"""Several hosts of one fleet in one test: each a store of its own (own host_id, own mounts).

Host "a" mounts the share `drop` at /mnt/a/drop, host "b" at /mnt/b/drop; both have an own
folder at the same absolute path /data (two different folders: one per machine).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from journal_paths import drive
from mavi_uploader.core.records import FileRecord, Observation
from mavi_uploader.core.states import State
from mavi_uploader.journal import Fleet, JournalStore, open_for_reports, open_journal

MOUNTS = {"a": "/mnt/a/drop", "b": "/mnt/b/drop", "c": "/mnt/c/drop"}
OWN = "/data"


def share_path(host: str, name: str) -> str:
    return f"{MOUNTS[host]}/{name}"


def seen(path: str, root: str | None = None, size: int = 10, mtime_ns: int = 1) -> Observation:
    """What a host's watcher reports for `path` under `root` (its folder, by default)."""
    return Observation(path, root or path.rsplit("/", 1)[0], size, mtime_ns)


class FleetHosts:
    """Opens hosts (and report views) on one fleet database; `close` closes them all."""

    def __init__(self, url: str, state_dir: Path, clock: Callable[[], float] | None = None) -> None:
        self.url = url
        self.state_dir = state_dir
        self.clock = clock
        self._opened: list[JournalStore] = []

    def fleet(
        self,
        host_id: str,
        shares: Mapping[str, str] | None = None,
        host_timeout: float = 30.0,
        **options: float,
    ) -> Fleet:
        if shares is None:
            shares = {"drop": MOUNTS[host_id]} if host_id in MOUNTS else {}
        return Fleet(
            url=self.url, host_id=host_id, shares=shares, host_timeout=host_timeout, **options
        )

    def host(
        self,
        host_id: str,
        shares: Mapping[str, str] | None = None,
        host_timeout: float = 30.0,
        **options: float,
    ) -> JournalStore:
        fleet = self.fleet(host_id, shares, host_timeout, **options)
        store = open_journal(self.state_dir / host_id, fleet=fleet, clock=self.clock)
        self._opened.append(store)
        return store

    def reader(self) -> JournalStore:
        store = open_for_reports(self.state_dir / "reports", self.fleet("reports", {}))
        assert store is not None
        self._opened.append(store)
        return store

    def close(self) -> None:
        for store in self._opened:
            store.close()


def sighted(host: JournalStore, path: str, size: int = 10) -> FileRecord:
    (rec,) = host.sight([seen(path, size=size)])
    return rec


def queued(host: JournalStore, path: str, size: int = 10) -> FileRecord:
    """A file `host` sighted and its settle tick queued."""
    return drive(host, sighted(host, path, size).id, State.QUEUED, "settled")


def claimed(host: JournalStore, owner: str = "w1", lease: float = 600.0) -> FileRecord:
    rec = host.claim(owner, lease)
    assert rec is not None, "nothing to claim"
    return rec


def get(host: JournalStore, file_id: int) -> FileRecord:
    rec = host.get(file_id)
    assert rec is not None
    return rec


@contextlib.contextmanager
def two_hosts_on_a_share(
    tmp_path: Path, url: str, clock: Callable[[], float]
) -> Iterator[tuple[Path, JournalStore, JournalStore]]:
    """(the share's folder, host a, host b): a mounts the share where it is, b through a
    symlink elsewhere, so each sees its own path for the same file; closed afterwards."""
    nas = tmp_path / "nas"
    nas.mkdir()
    os.symlink(nas, tmp_path / "b-mount")
    a = open_journal(tmp_path / "a", fleet=Fleet(url, "a", {"drop": str(nas)}), clock=clock)
    b_mount = str(tmp_path / "b-mount")
    b = open_journal(tmp_path / "b", fleet=Fleet(url, "b", {"drop": b_mount}), clock=clock)
    try:
        yield nas, a, b
    finally:
        a.close()
        b.close()
