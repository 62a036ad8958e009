"""Fleet mode across threads and processes: wake-ups (LISTEN/NOTIFY), the host id lock
(HostLock) and claims racing from several hosts at once."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO, wait_for
from contract.helpers import in_threads
from fleet_hosts import FleetHosts, queued, seen, share_path, sighted
from journal_paths import drive
from mavi_uploader.core.states import State
from mavi_uploader.journal import HostTaken, JournalStore, lock_host


@pytest.fixture
def hosts(pg_url: str, tmp_path: Path) -> Iterator[FleetHosts]:
    opened = FleetHosts(pg_url, tmp_path)  # the database's clock, as a daemon has it
    yield opened
    opened.close()


class Waker:
    """Counts wake-ups; `woken()` is true (once) after one came."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def __call__(self) -> None:
        self._event.set()

    def woken(self) -> bool:
        if self._event.is_set():
            self._event.clear()
            return True
        return False


def listening(host: JournalStore) -> Waker:
    """`host` listens for new work; returns once its listener is up (its first wake-up)."""
    waker = Waker()
    host.on_new_work(waker)
    wait_for(waker.woken, 15, what="the listener's first wake-up")
    return waker


def test_a_file_another_host_enqueues_wakes_a_listening_host(hosts: FleetHosts) -> None:
    a, b = hosts.host("a"), hosts.host("b")
    waker = listening(b)
    a.enqueue(seen(share_path("a", "now.mp4")), "enqueued")
    wait_for(waker.woken, 15, what="b woken by a's enqueue")


def test_a_file_another_host_settles_wakes_a_listening_host(hosts: FleetHosts) -> None:
    a, b = hosts.host("a"), hosts.host("b")
    waker = listening(b)
    rec = sighted(a, share_path("a", "clip.mp4"))
    waker.woken()  # a sighting alone may or may not wake; the settle must
    drive(a, rec.id, State.QUEUED, "settled")
    wait_for(waker.woken, 15, what="b woken by a's settle tick")


def test_a_retry_requeued_by_another_host_wakes_a_listening_host(hosts: FleetHosts) -> None:
    a, b = hosts.host("a"), hosts.host("b")
    rec = drive(a, sighted(a, share_path("a", "clip.mp4")).id, State.FAILED)
    waker = listening(b)
    assert a.transition(rec.id, State.QUEUED, "retry", expect=State.FAILED) is not None
    wait_for(waker.woken, 15, what="b woken by a's retry")


def test_every_listening_host_is_woken(hosts: FleetHosts) -> None:
    a = hosts.host("a")
    wakers = [listening(hosts.host(name)) for name in ("b", "c")]
    queued(a, share_path("a", "clip.mp4"))
    for waker in wakers:
        wait_for(waker.woken, 15, what="every host woken")


def test_hosts_starting_together_on_a_new_database_create_one_journal(
    hosts: FleetHosts,
) -> None:
    opened: dict[int, JournalStore] = {}

    def start(n: int) -> None:
        opened[n] = hosts.host("abc"[n])

    in_threads(start, 3)
    assert len(opened) == 3
    rec = queued(opened[0], share_path("a", "clip.mp4"))
    assert opened[2].get(rec.id) is not None


def test_a_heartbeat_on_the_database_clock_is_alive_at_once(hosts: FleetHosts) -> None:
    a, b = hosts.host("a"), hosts.host("b")
    a.heartbeat(4242)
    (seen_a,) = b.hosts()
    assert (seen_a.host_id, seen_a.pid, seen_a.alive) == ("a", 4242, True)
    assert abs(seen_a.last_seen - b.now()) < 5


# ---- the host id lock ------------------------------------------------------------------------


def test_a_host_id_is_held_by_one_daemon_at_a_time(hosts: FleetHosts) -> None:
    first = lock_host(hosts.fleet("a"))
    try:
        with pytest.raises(HostTaken, match="host_id 'a'"):
            lock_host(hosts.fleet("a"))
        other = lock_host(hosts.fleet("b"))  # another id: fine
        other.release()
    finally:
        first.release()
    again = lock_host(hosts.fleet("a"))  # free once the first holder let go
    again.release()


def test_a_refused_host_lock_leaves_no_connection_behind(hosts: FleetHosts) -> None:
    store = hosts.host("a")
    first = lock_host(hosts.fleet("a"))
    try:
        before = _backends(hosts.url)
        for _ in range(5):
            with pytest.raises(HostTaken):
                lock_host(hosts.fleet("a"))
        assert _backends(hosts.url) <= before
    finally:
        first.release()
    assert store.counts()["queued"] == 0  # the store's own connections still work


def _backends(url: str) -> int:
    import psycopg  # noqa: PLC0415 - the PostgreSQL extra, present where these tests run

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid != pg_backend_pid()"
        ).fetchone()
    assert row is not None
    return int(row[0])


# Holds host id argv[2] in the fleet at argv[1], says so, then waits to be killed.
_HOLDER = """
import sys, time
from mavi_uploader.journal import Fleet, lock_host
lock = lock_host(Fleet(url=sys.argv[1], host_id=sys.argv[2]))  # kept: freed when collected
print("locked", flush=True)
time.sleep(600)
"""


def test_a_host_id_is_free_again_once_its_holder_is_killed(hosts: FleetHosts) -> None:
    env = {"PYTHONPATH": str(REPO / "daemon"), "PATH": "/usr/bin:/bin"}
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, hosts.url, "a"], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n", "the holder could not take the lock"
        with pytest.raises(HostTaken):
            lock_host(hosts.fleet("a"))
        holder.kill()  # SIGKILL: no clean-up, the server notices the dropped connection
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=30)
        if holder.stdout is not None:
            holder.stdout.close()

    def take() -> object:
        try:
            return lock_host(hosts.fleet("a"))
        except HostTaken:
            return None

    lock = wait_for(take, 20, what="host id a freed after its holder was killed")
    lock.release()


# ---- claims racing across hosts --------------------------------------------------------------


def test_claims_from_three_hosts_and_many_threads_never_hand_a_row_out_twice(
    hosts: FleetHosts,
) -> None:
    stores = [hosts.host(name) for name in ("a", "b", "c")]
    total = 60
    stores[0].sight([seen(share_path("a", f"{n:03d}.mp4")) for n in range(total)])
    for rec in stores[0].files(State.SETTLING):
        drive(stores[0], rec.id, State.QUEUED, "settled")
    taken: list[tuple[str, int]] = []
    lock = threading.Lock()
    threads_per_host = 4

    def work(n: int) -> None:
        store, name = stores[n % 3], f"w{n // 3}"
        deadline = time.monotonic() + 60
        # SKIP LOCKED may come back empty while rows remain: go on until all are taken.
        while time.monotonic() < deadline:
            with lock:
                if len(taken) >= total:
                    return
            rec = store.claim(name, 600)
            if rec is not None:
                with lock:
                    taken.append((f"{'abc'[n % 3]}/{name}", rec.id))

    in_threads(work, 3 * threads_per_host, timeout=90)
    twice = [i for i, count in Counter(i for _, i in taken).items() if count > 1]
    assert not twice, f"handed out twice: {twice}"
    assert len(taken) == total
    rows = hosts.reader().files(State.UPLOADING)
    assert len(rows) == total
    assert sorted(r.id for r in rows) == sorted(i for _, i in taken)
    for who, file_id in taken:  # each row names the host and worker that got it
        rec = next(r for r in rows if r.id == file_id)
        assert f"{rec.host_id}/{rec.lease_owner}" == who
