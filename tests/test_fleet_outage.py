"""Fleet mode when the database is away or misconfigured: calls raise JournalError (nothing
else, and never hang), the same store objects work again once the server is back, and a bad
`journal_url` is a JournalSettingError that names the key and never shows the password."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import pgcluster
from conftest import Clock, wait_for
from contract.helpers import in_threads
from fleet_hosts import FleetHosts, claimed, queued, seen, share_path, sighted
from mavi_uploader.journal import (
    Fleet,
    HostTaken,
    JournalError,
    JournalSettingError,
    JournalStore,
    lock_host,
    open_for_reports,
    open_journal,
)
from mavi_uploader.upload.ledger import Ledger

# How long a call may wait for the database before JournalError (Fleet.wait): small here so
# outage tests are quick; the bound below leaves room for a loaded 2-core machine.
WAIT = 1.5
BOUND = WAIT + 6.0
PASSWORD = "s3cret-Pa55word"


@pytest.fixture(scope="module")
def cluster(pg_cluster: pgcluster.Cluster) -> Iterator[pgcluster.Cluster]:
    """A cluster of this module's own, to stop and start (pg_cluster: skip where absent)."""
    with pgcluster.running_cluster() as own:
        yield own


@pytest.fixture
def outage_hosts(cluster: pgcluster.Cluster, tmp_path: Path) -> Iterator[FleetHosts]:
    url = cluster.create_database(f"o{time.monotonic_ns()}")
    opened = FleetHosts(url, tmp_path)
    yield opened
    with contextlib.suppress(Exception):
        cluster.start()  # a failed test may have left it stopped
    opened.close()


@contextlib.contextmanager
def stopped(cluster: pgcluster.Cluster) -> Iterator[None]:
    cluster.stop()
    try:
        yield
    finally:
        cluster.start()


def fails_fast(call: Callable[[], Any], what: str) -> JournalError:
    """`call` raises JournalError (not another error) within BOUND seconds."""
    started = time.monotonic()
    try:
        call()
    except JournalError as exc:
        took = time.monotonic() - started
        assert took < BOUND, f"{what} took {took:.1f}s to fail"
        return exc
    except Exception as exc:  # the point: nothing but JournalError
        pytest.fail(f"{what} raised {type(exc).__name__} instead of JournalError: {exc}")
    pytest.fail(f"{what} did not fail while the database was stopped")


def calls_of(store: JournalStore) -> dict[str, Callable[[], Any]]:
    """One call of each kind a daemon makes, to run while the server is away."""
    return {
        "sight": lambda: store.sight([seen(share_path("a", "during.mp4"))]),
        "claim": lambda: store.claim("w1", 60),
        "transition": lambda: store.transition(1, store.get(1).state, "x"),  # type: ignore[union-attr]
        "heartbeat": lambda: store.heartbeat(1),
        "hosts": store.hosts,
        "pause": store.pause,
        "take_pause_probe": lambda: store.take_pause_probe(60),
        "counts": store.counts,
        "files": store.files,
        "recover_after_crash": store.recover_after_crash,
    }


def test_calls_fail_with_journal_error_while_the_database_is_stopped_then_work_again(
    cluster: pgcluster.Cluster, outage_hosts: FleetHosts
) -> None:
    a = outage_hosts.host("a", wait=WAIT)
    b = outage_hosts.host("b", wait=WAIT)
    rec = queued(a, share_path("a", "before.mp4"))
    a.heartbeat(1)
    with stopped(cluster):
        for name, call in calls_of(a).items():
            fails_fast(call, name)
        fails_fast(lambda: b.claim("w1", 60), "b.claim")
    # The same objects, not reopened: the first call of each host works again.
    got = claimed(b)
    assert got.id == rec.id
    sighted(a, share_path("a", "after.mp4"))
    assert a.counts()["uploading"] == 1
    assert [h.host_id for h in a.hosts()] == ["a"]


def test_a_busy_pool_recovers_after_an_outage(
    cluster: pgcluster.Cluster, outage_hosts: FleetHosts
) -> None:
    """Connections every worker held before the outage are all dead after it: the first call
    after the restart must not trip over each of them in turn."""
    a = outage_hosts.host("a", wait=WAIT)
    queued(a, share_path("a", "x.mp4"))
    together = threading.Barrier(6)

    def busy(n: int) -> None:  # six transactions open at once: six pooled connections
        with a.batch():
            a.claim(f"w{n}", 60)
            together.wait(timeout=30)

    in_threads(busy, 6)
    with stopped(cluster):
        fails_fast(a.counts, "counts")
    started = time.monotonic()
    assert a.counts()["uploading"] == 1
    assert time.monotonic() - started < BOUND


def test_a_listener_hears_new_work_again_after_an_outage(
    cluster: pgcluster.Cluster, outage_hosts: FleetHosts
) -> None:
    a = outage_hosts.host("a", wait=WAIT)
    b = outage_hosts.host("b", wait=WAIT)
    woken: list[float] = []
    b.on_new_work(lambda: woken.append(time.monotonic()))
    wait_for(lambda: woken, 15, what="the listener's first wake-up")
    with stopped(cluster):
        pass
    wait_for(lambda: _try(lambda: a.enqueue(seen(share_path("a", "n.mp4")), "now")), 20)
    count = len(woken)
    wait_for(
        lambda: (
            _try(lambda: queued(a, share_path("a", f"m{len(woken)}.mp4"))) and (len(woken) > count)
        ),
        30,
        interval=0.5,
        what="b woken by work queued after the outage",
    )


def _try(call: Callable[[], Any]) -> bool:
    try:
        call()
    except JournalError:
        return False
    return True


def test_a_host_lock_is_taken_again_after_an_outage(
    cluster: pgcluster.Cluster, outage_hosts: FleetHosts
) -> None:
    outage_hosts.host("a")  # the schema
    lock = lock_host(outage_hosts.fleet("a"))
    try:
        with stopped(cluster):
            fails_fast(lock.keep, "keep")
        lock.keep()
        with pytest.raises(JournalError, match="host_id 'a'"):
            lock_host(outage_hosts.fleet("a"))
    finally:
        lock.release()


def test_a_host_lock_another_daemon_took_during_an_outage_is_lost(
    cluster: pgcluster.Cluster, outage_hosts: FleetHosts
) -> None:
    outage_hosts.host("a")
    lock = lock_host(outage_hosts.fleet("a"))
    with stopped(cluster):
        pass
    usurper = lock_host(outage_hosts.fleet("a"))  # the old session died with the server
    try:
        with pytest.raises(HostTaken):
            lock.keep()
    finally:
        usurper.release()
        lock.release()


def test_opening_while_the_database_is_stopped_is_a_journal_error(
    cluster: pgcluster.Cluster, outage_hosts: FleetHosts, tmp_path: Path
) -> None:
    fleet = outage_hosts.fleet("a", wait=WAIT)
    with stopped(cluster):
        exc = fails_fast(lambda: open_journal(tmp_path, fleet=fleet), "open_journal")
        assert not isinstance(exc, JournalSettingError)  # an outage, not a bad setting
        assert "journal_url" in str(exc)
        fails_fast(lambda: open_for_reports(tmp_path, fleet), "open_for_reports")
        fails_fast(lambda: lock_host(fleet), "lock_host")


# ---- bad settings ----------------------------------------------------------------------------


def _bad_urls(cluster: pgcluster.Cluster) -> dict[str, str]:
    port = cluster.port
    return {
        "no such database": f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/nope",
        "no such role": f"postgresql://nobody:{PASSWORD}@127.0.0.1:{port}/postgres",
        "not a postgresql url": f"mysql://postgres:{PASSWORD}@127.0.0.1:{port}/postgres",
        "bad port": f"postgresql://postgres:{PASSWORD}@127.0.0.1:port/postgres",
        "bad percent escape": f"postgresql://postgres:{PASSWORD}%zz@127.0.0.1:{port}/postgres",
        "bad ipv6 host": f"postgresql://postgres:{PASSWORD}@[::1/postgres",
        "unknown option": f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/postgres?x=1",
        "no url at all": f"password={PASSWORD} dbname",
        "key=value, no such database": (
            f"host=127.0.0.1 port={port} user=postgres password={PASSWORD} dbname=nope"
        ),
        "password in the query": f"postgresql://postgres@127.0.0.1:{port}/nope?password={PASSWORD}",
    }


@pytest.mark.parametrize(
    "opener",
    ["open_journal", "open_for_reports", "lock_host"],
)
def test_a_bad_journal_url_is_a_setting_error_that_never_shows_the_password(
    cluster: pgcluster.Cluster, tmp_path: Path, opener: str
) -> None:
    for why, url in _bad_urls(cluster).items():
        fleet = Fleet(url=url, host_id="a")
        with pytest.raises(JournalSettingError) as caught:
            if opener == "open_journal":
                open_journal(tmp_path, fleet=fleet)
            elif opener == "open_for_reports":
                open_for_reports(tmp_path, fleet)
            else:
                lock_host(fleet)
        text = str(caught.value)
        assert "journal_url" in text, (why, text)
        assert PASSWORD not in text, (why, text)
        assert PASSWORD not in repr(fleet)


def test_a_refused_login_is_a_setting_error(cluster: pgcluster.Cluster, tmp_path: Path) -> None:
    import psycopg  # noqa: PLC0415

    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS nologin_role")
        conn.execute("CREATE ROLE nologin_role NOLOGIN")
    url = f"postgresql://nologin_role:{PASSWORD}@127.0.0.1:{cluster.port}/postgres"
    with pytest.raises(JournalSettingError, match="journal_url") as caught:
        open_journal(tmp_path, fleet=Fleet(url=url, host_id="a"))
    assert PASSWORD not in str(caught.value)
    assert "nologin_role" in str(caught.value)


def test_reports_on_an_empty_database_find_no_journal(pg_url: str, tmp_path: Path) -> None:
    fleet = Fleet(url=pg_url, host_id="a", shares={"drop": "/mnt/a/drop"})
    assert open_for_reports(tmp_path, fleet) is None
    open_journal(tmp_path, fleet=fleet).close()
    reader = open_for_reports(tmp_path, fleet)
    assert reader is not None
    try:
        assert reader.counts()["settling"] == 0
    finally:
        reader.close()


def test_after_an_outage_no_host_takes_another_hosts_upload_before_a_host_timeout(
    cluster: pgcluster.Cluster, tmp_path: Path
) -> None:
    """Every host is equally stale after an outage longer than host_timeout: none may take
    the others' in-flight files until it has itself been back for a whole host_timeout."""
    clock = Clock()
    url = cluster.create_database(f"s{time.monotonic_ns()}")
    hosts = FleetHosts(url, tmp_path, clock=clock)
    try:
        a = hosts.host("a", shares={"drop": "/mnt/a/drop"}, host_timeout=30.0, wait=WAIT)
        b = hosts.host("b", shares={"drop": "/mnt/b/drop"}, host_timeout=30.0, wait=WAIT)
        a.heartbeat(1)
        b.heartbeat(2)
        clock.now += 60  # both have been beating for longer than host_timeout
        a.heartbeat(1)
        b.heartbeat(2)
        rec = queued(b, share_path("b", "clip.mp4"))
        assert claimed(b).id == rec.id
        with stopped(cluster):
            fails_fast(lambda: a.claim("w1", 60), "a claim during the outage")
            clock.now += 120  # a long outage: b's last beat is now stale too
        assert a.claim("w1", 60) is None  # a is back, but not for a host_timeout yet
        a.heartbeat(1)
        assert a.claim("w1", 60) is None  # its first beat back starts the count
        clock.now += 31
        a.heartbeat(1)  # a has been back a whole host_timeout; b never beat again
        taken = a.claim("w1", 60)
        assert taken is not None and taken.id == rec.id
    finally:
        hosts.close()


def test_a_worker_out_of_touch_with_the_journal_stops_sending_before_its_claim_lapses(
    cluster: pgcluster.Cluster, outage_hosts: FleetHosts
) -> None:
    """Cut off from the fleet's journal, an upload stops (its progress note says the row is
    no longer ours) well before host_timeout, when another host may take the file: the bytes
    it would send after that would be a second upload."""
    a = outage_hosts.host("a", host_timeout=6.0, wait=WAIT)
    rec = queued(a, share_path("a", "clip.mp4"))
    held = claimed(a, "w1")
    assert held.id == rec.id
    ledger = Ledger(a, "w1")
    assert ledger.note(held, bytes_sent=1) and not _out_of_touch(ledger)
    with stopped(cluster):
        started = time.monotonic()
        wait_for(lambda: not ledger.note(held, bytes_sent=2), 30, what="the fence")
        assert _out_of_touch(ledger)
        assert time.monotonic() - started < 6.0  # before the others could take the file
    assert ledger.note(held, bytes_sent=3) and not _out_of_touch(ledger)  # back in touch


def _out_of_touch(ledger: Ledger) -> bool:
    return ledger.out_of_touch
