"""The fleet's shared rate slots on a real PostgreSQL (journal/postgres/slots.py): the book on
the database clock, hosts (their own pools, their own processes) sharing one endpoint's limit,
and a database that goes away while a caller waits for its slot."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

import pgcluster
from conftest import wait_for
from fleet_slot_host import TimedBook, open_host
from mavi_uploader.journal import JournalStore, open_journal, shared_rate_slots
from mavi_uploader.journal.postgres.slots import DatabaseSlots
from mavi_uploader.mavi.ratelimit import JITTER_MARGIN, LocalSlots, RateLimiter, Stopped
from mavi_uploader.service.daemon import Daemon
from test_timer_wiring import config_with

RATE = 20.0  # slots 55 ms apart: many grants in little time
# The database's clock and time.time() are the machine's one clock; what is left is rounding
# (the book's microseconds) and a wait's end read on another clock than time.time().
TOLERANCE = 0.002
HOST_SCRIPT = Path(__file__).with_name("fleet_slot_host.py")

Grant = tuple[float, float]  # (earliest, returned): fleet_slot_host.TimedBook.take


def assert_within_the_limit(grants: list[Grant], rate: float) -> None:
    """No grant returned less than the interval (minus TOLERANCE) after the slot of another
    one could start, and no second holds more than `rate` grants.

    A slot starts no earlier than its `earliest` (TimedBook) and its acquire returns no
    earlier than its start; of two slots the later starts an interval after the earlier. So
    this holds however late a loaded machine runs a thread, and fails when two grants shared
    a slot (unless both ran an interval late).
    """
    interval = JITTER_MARGIN / rate
    apart = [
        max(b_returned - a_earliest, a_returned - b_earliest)
        for (a_earliest, a_returned), (b_earliest, b_returned) in itertools.combinations(grants, 2)
    ]
    assert min(apart) >= interval - TOLERANCE, f"grants {min(apart) * 1000:.1f} ms apart"
    for earliest, _ in grants:
        in_a_second = sum(e >= earliest and returned < earliest + 1.0 for e, returned in grants)
        assert in_a_second <= rate, f"{in_a_second} grants in the second from {earliest}"


def book_of(journal: JournalStore) -> DatabaseSlots:
    slots = shared_rate_slots(journal)
    assert slots is not None
    return slots


@pytest.fixture
def hosts(pg_url: str) -> Iterator[list[JournalStore]]:
    """Three hosts' journals: one fleet, each host with a pool of its own."""
    opened = [open_host(pg_url, name) for name in ("a", "b", "c")]
    yield opened
    for journal in opened:
        journal.close()


@pytest.fixture
def book(hosts: list[JournalStore]) -> DatabaseSlots:
    return book_of(hosts[0])


def acquire_into(limiter: RateLimiter, times: list[float], clock: Callable[[], float]) -> None:
    """Take a "sign" slot, then note when."""
    limiter.acquire("sign")
    times.append(clock())


class WaitLog(threading.Event):
    """A stop event that records every wait the limiter asks of it."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return super().wait(timeout)


# ---- the book --------------------------------------------------------------------------


def test_sqlite_keeps_its_slots_in_process(tmp_path: Path) -> None:
    journal = open_journal(tmp_path)
    try:
        assert shared_rate_slots(journal) is None
    finally:
        journal.close()


def test_slots_are_spaced_per_endpoint(book: DatabaseSlots) -> None:
    # Long intervals, so the milliseconds between the calls do not matter.
    delays = [book.reserve("sign", 10.0) for _ in range(3)]
    assert delays == pytest.approx([0.0, 10.0, 20.0], abs=0.5)
    assert book.reserve("metadata", 10.0) == 0.0
    assert book.reserve("sign", 10.0) == pytest.approx(30.0, abs=0.5)


def test_slots_are_on_the_database_clock(pg_url: str, book: DatabaseSlots) -> None:
    book.reserve("sign", 10.0)
    import psycopg  # noqa: PLC0415 - absent where the PostgreSQL tests skip

    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT next_at - extract(epoch FROM clock_timestamp())::float8 FROM rate_slots"
        ).fetchone()
    assert row is not None
    assert row[0] == pytest.approx(10.0, abs=0.5)


def test_a_penalty_pushes_the_next_slot_back_and_blocks(book: DatabaseSlots) -> None:
    assert book.blocked_for("sign") == 0.0  # no row yet
    book.reserve("sign", 10.0)
    book.penalize("sign", 30.0)
    assert book.blocked_for("sign") == pytest.approx(30.0, abs=0.5)
    assert book.reserve("sign", 10.0) == pytest.approx(30.0, abs=0.5)
    assert book.reserve("sign", 10.0) == pytest.approx(40.0, abs=0.5)
    assert book.blocked_for("metadata") == 0.0


def test_a_penalty_never_pulls_a_slot_earlier(book: DatabaseSlots) -> None:
    for _ in range(4):
        book.reserve("sign", 10.0)  # the next slot is 40 s away
    book.penalize("sign", 0.5)
    assert book.reserve("sign", 10.0) == pytest.approx(40.0, abs=0.5)
    book.penalize("metadata", 3.0)  # an endpoint not used yet
    assert book.reserve("metadata", 10.0) == pytest.approx(3.0, abs=0.5)


def test_one_round_trip_a_call_and_none_at_rate_zero(book: DatabaseSlots) -> None:
    unlimited = RateLimiter(0, slots=book)
    for _ in range(50):
        unlimited.acquire("sign")
    unlimited.penalize("sign", 0.01)  # kept in this process
    assert book.round_trips == 0
    book.reserve("sign", 1.0)
    book.penalize("sign", 1.0)
    book.blocked_for("sign")
    assert book.round_trips == 3


def test_a_penalty_on_another_host_voids_a_slot_being_waited_for(
    hosts: list[JournalStore],
) -> None:
    here, there = (RateLimiter(1, slots=book_of(j), stop=WaitLog()) for j in hosts[:2])
    here.acquire("sign")
    stop = WaitLog()
    waiter = RateLimiter(1, slots=book_of(hosts[2]), stop=stop)  # its slot: 1.1 s away
    returned: list[float] = []
    thread = threading.Thread(target=acquire_into, args=(waiter, returned, time.time))
    thread.start()
    wait_for(lambda: stop.waits, what="the waiter's wait for its slot")
    penalized_at = time.time()
    there.penalize("sign", 1.5)  # a 429 on the other host while this one waits
    thread.join(10)
    assert not thread.is_alive()
    assert returned[0] - penalized_at >= 1.5 - TOLERANCE


# ---- hosts sharing the limit -------------------------------------------------------------


def test_the_check_catches_hosts_that_do_not_share() -> None:
    """The check the fleet tests rely on fails for hosts with limits of their own."""
    grants: list[Grant] = []
    lock = threading.Lock()

    def host() -> None:
        book = TimedBook(LocalSlots())
        limiter = RateLimiter(RATE, slots=book)
        mine = [book.take(limiter, "sign") for _ in range(3)]
        with lock:
            grants.extend(mine)

    threads = [threading.Thread(target=host) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(grants) == 9
    with pytest.raises(AssertionError, match="ms apart"):
        assert_within_the_limit(grants, RATE)


def test_hosts_with_pools_of_their_own_share_the_limit(hosts: list[JournalStore]) -> None:
    per_thread, start = 6, threading.Barrier(6)
    grants: list[Grant] = []
    lock = threading.Lock()

    def hammer(limiter: RateLimiter, book: TimedBook) -> None:
        start.wait(10)
        mine = [book.take(limiter, "sign") for _ in range(per_thread)]
        with lock:
            grants.extend(mine)

    threads = []
    for journal in hosts:
        book = TimedBook(book_of(journal))
        limiter = RateLimiter(RATE, slots=book)
        threads += [threading.Thread(target=hammer, args=(limiter, book)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(t.is_alive() for t in threads)
    assert len(grants) == 6 * per_thread
    assert_within_the_limit(grants, RATE)


def test_hosts_in_processes_of_their_own_share_the_limit(pg_url: str) -> None:
    open_host(pg_url, "setup").close()  # the schema, before the hosts race to create it
    count = 10
    procs = [
        subprocess.Popen(
            [sys.executable, str(HOST_SCRIPT), pg_url, f"host-{n}", str(RATE), str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n", f"host exited {proc.wait(10)}"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=60)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert [proc.returncode for proc in procs] == [0, 0, 0]
    grants = [(r, t) for out in outputs for r, t in json.loads(out)]
    assert len(grants) == 3 * count
    assert_within_the_limit(grants, RATE)


def test_the_daemon_limits_its_calls_in_the_fleets_book(
    tmp_path: Path, pg_url: str, hosts: list[JournalStore]
) -> None:
    config = config_with(tmp_path, {})
    parts = Daemon(config)._assemble(hosts[0])
    try:
        parts.limiter.acquire("sign")
        book_of(hosts[1]).penalize("sign", 30.0)  # another host's 429: this one must see it
        assert parts.limiter.reserve("sign") == pytest.approx(30.0, abs=0.5)
    finally:
        parts.watcher.stop()


# ---- the database goes away ------------------------------------------------------------


@pytest.fixture
def own_cluster(pg_cluster: pgcluster.Cluster) -> Iterator[pgcluster.Cluster]:
    """A cluster of this test's own to stop and start (the session's serves other tests);
    `pg_cluster` only for its verdict on whether PostgreSQL tests can run here."""
    with pgcluster.running_cluster() as cluster:
        yield cluster


def test_no_slot_while_the_database_is_away(own_cluster: pgcluster.Cluster) -> None:
    url = own_cluster.create_database("slots")
    here, there = open_host(url, "a"), open_host(url, "b")
    try:
        stop = WaitLog()
        limiter = RateLimiter(RATE, slots=book_of(here), stop=stop)
        limiter.acquire("sign")
        book_of(there).penalize("sign", 4.0)  # the next slot: 4 s away
        granted: list[float] = []
        thread = threading.Thread(target=acquire_into, args=(limiter, granted, time.monotonic))
        with capture_logs() as logs:
            thread.start()
            wait_for(lambda: stop.waits, what="the wait for the slot")
            own_cluster.stop()  # while the waiter waits for its slot
            assert not granted
            # Its wait ends with the server gone: whether a penalty landed cannot be known.
            wait_for(lambda: len(stop.waits) >= 4, what="retries while the server is away")
            assert not granted
            restarting = time.monotonic()
            own_cluster.start()
            thread.join(30)
        assert not thread.is_alive()
        assert granted and granted[0] >= restarting
        warnings = [e for e in logs if e["event"].startswith("rate slots out of reach")]
        assert len(warnings) == 1  # however many retries
        assert any(e["event"] == "rate slots reachable again" for e in logs)
        limiter.acquire("sign")  # and on it goes
    finally:
        here.close()
        there.close()


def test_a_stop_ends_the_wait_for_a_database_that_is_away(
    own_cluster: pgcluster.Cluster,
) -> None:
    url = own_cluster.create_database("slots")
    journal = open_host(url, "a")
    try:
        stop = WaitLog()
        limiter = RateLimiter(RATE, slots=book_of(journal), stop=stop)
        limiter.acquire("sign")
        own_cluster.stop()
        outcome: list[BaseException] = []

        def take() -> None:
            try:
                limiter.acquire("sign")
            except Stopped as exc:
                outcome.append(exc)

        thread = threading.Thread(target=take)
        thread.start()
        wait_for(lambda: len(stop.waits) >= 2, what="retries while the server is away")
        stop.set()
        thread.join(10)
        assert not thread.is_alive()
        assert len(outcome) == 1
    finally:
        journal.close()
