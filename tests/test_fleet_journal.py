"""Fleet mode on PostgreSQL: several hosts share one journal (DESIGN.md, "Fleet mode").

Each host is a store of its own with its own host_id and its own mount path of the share
`drop` (tests/fleet_hosts.py); they meet only in the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Clock
from contract.helpers import in_threads
from fleet_hosts import OWN, FleetHosts, claimed, get, queued, seen, share_path, sighted
from journal_paths import drive
from mavi_uploader.core.states import State
from mavi_uploader.journal import ContentClaim, JournalStore

SHA = "ab" * 32


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hosts(pg_url: str, tmp_path: Path, clock: Clock) -> Iterator[FleetHosts]:
    opened = FleetHosts(pg_url, tmp_path, clock)
    yield opened
    opened.close()


@pytest.fixture
def a(hosts: FleetHosts) -> JournalStore:
    return hosts.host("a")


@pytest.fixture
def b(hosts: FleetHosts) -> JournalStore:
    return hosts.host("b")


# ---- one file, one row, each host's own path -------------------------------------------------


def test_a_share_file_sighted_by_two_hosts_is_one_row_shown_at_each_mount(
    a: JournalStore, b: JournalStore, hosts: FleetHosts
) -> None:
    rec = sighted(a, share_path("a", "clip.mp4"))
    assert b.sight([seen(share_path("b", "clip.mp4"))]) == []  # known: no new row
    assert [r.id for r in b.by_path(share_path("b", "clip.mp4"))] == [rec.id]
    mine, theirs = get(a, rec.id), get(b, rec.id)
    assert (mine.path, mine.watch_root) == ("/mnt/a/drop/clip.mp4", "/mnt/a/drop")
    assert (theirs.path, theirs.watch_root) == ("/mnt/b/drop/clip.mp4", "/mnt/b/drop")
    assert mine.share == theirs.share == "drop"
    assert hosts.reader().counts()["settling"] == 1


def test_share_files_in_subfolders_keep_their_relative_path_on_every_host(
    a: JournalStore, b: JournalStore
) -> None:
    rec = sighted(a, share_path("a", "day 1/cam 2/clip.mp4"))
    assert get(b, rec.id).path == "/mnt/b/drop/day 1/cam 2/clip.mp4"
    assert b.sight([seen(share_path("b", "day 1/cam 2/clip.mp4"))]) == []


def test_the_same_own_path_on_two_hosts_is_two_files(a: JournalStore, b: JournalStore) -> None:
    mine, theirs = sighted(a, f"{OWN}/clip.mp4"), sighted(b, f"{OWN}/clip.mp4")
    assert mine.id != theirs.id
    assert (mine.share, theirs.share) == (None, None)
    assert [r.id for r in a.by_path(f"{OWN}/clip.mp4")] == [mine.id]
    assert [r.id for r in b.by_path(f"{OWN}/clip.mp4")] == [theirs.id]
    # Another host's own file is shown as host:path, never as a path of this host.
    assert get(b, mine.id).path == f"a:{OWN}/clip.mp4"


def test_two_hosts_sighting_the_same_share_files_at_once_make_one_row_each(
    a: JournalStore, b: JournalStore, hosts: FleetHosts
) -> None:
    names = [f"clip-{n}.mp4" for n in range(40)]

    def sight(n: int) -> None:
        host, name = (a, "a") if n % 2 == 0 else (b, "b")
        order = names if n < 2 else list(reversed(names))  # opposite orders: no deadlock
        for chunk in range(0, len(order), 8):
            host.sight([seen(share_path(name, f)) for f in order[chunk : chunk + 8]])

    in_threads(sight, 4)
    rows = hosts.reader().files()
    assert sorted(r.path for r in rows) == sorted(f"drop:{f}" for f in names)


# ---- who may claim what ----------------------------------------------------------------------


def test_an_own_folder_file_is_claimed_only_by_its_host(
    a: JournalStore, b: JournalStore, hosts: FleetHosts
) -> None:
    rec = queued(a, f"{OWN}/only-a.mp4")
    assert b.claim("w1", 60) is None  # the only due row, but b cannot reach it
    assert hosts.host("c", shares={}).claim("w1", 60) is None
    got = claimed(a)
    assert (got.id, got.host_id, got.path) == (rec.id, "a", f"{OWN}/only-a.mp4")


def test_a_share_file_is_claimed_by_any_host_that_mounts_the_share(
    a: JournalStore, b: JournalStore, hosts: FleetHosts
) -> None:
    rec = queued(a, share_path("a", "clip.mp4"))
    assert hosts.host("c", shares={}).claim("w1", 60) is None  # c does not mount drop
    got = claimed(b)
    assert (got.id, got.host_id, got.path) == (rec.id, "b", share_path("b", "clip.mp4"))
    assert a.claim("w1", 60) is None  # b holds it now
    assert get(a, rec.id).host_id == "b"
    claim_event = a.history(rec.id)[-1]
    assert (claim_event.to_state, claim_event.host_id) == (State.UPLOADING, "b")


def test_a_share_mounted_under_another_name_elsewhere_is_not_this_hosts(
    hosts: FleetHosts,
) -> None:
    a = hosts.host("a", shares={"drop": "/mnt/a/drop"})
    other = hosts.host("b", shares={"other": "/mnt/a/drop"})
    rec = queued(a, "/mnt/a/drop/clip.mp4")
    assert other.claim("w1", 60) is None
    assert get(other, rec.id).path == "drop:clip.mp4"


def test_a_worker_name_is_a_lease_only_on_its_own_host(a: JournalStore, b: JournalStore) -> None:
    rec = queued(a, share_path("a", "clip.mp4"))
    claimed(a, "w1")
    # b's worker of the same name holds nothing: the lease is (host, worker).
    assert b.transition(rec.id, State.QUEUED, "not mine", owner="w1") is None
    assert not b.update(rec.id, owner="w1", bytes_sent=5)
    assert b.claim_content(rec.id, SHA, "w1", max_sends=3) == (ContentClaim.LOST, None)
    assert get(a, rec.id).state is State.UPLOADING


def test_handled_index_of_a_share_root_covers_files_another_host_finished(
    a: JournalStore, b: JournalStore
) -> None:
    drive(a, sighted(a, share_path("a", "old.mp4"), size=7).id, State.DONE)
    drive(a, sighted(a, share_path("a", "sub/deep.mp4"), size=8).id, State.DONE)
    sighted(a, share_path("a", "new.mp4"))  # settling: not handled
    drive(a, sighted(a, f"{OWN}/mine.mp4").id, State.DONE)
    expected = {"/mnt/b/drop/old.mp4": (7, 1), "/mnt/b/drop/sub/deep.mp4": (8, 1)}
    assert b.handled_index("/mnt/b/drop") == expected
    assert b.handled_index("/mnt/b/drop/") == expected
    assert b.handled_index("/mnt/b/drop/sub") == {"/mnt/b/drop/sub/deep.mp4": (8, 1)}
    assert b.handled_index(OWN) == {}  # b's /data is not a's
    assert a.handled_index(OWN) == {f"{OWN}/mine.mp4": (10, 1)}


def test_enqueue_on_one_host_queues_the_row_another_host_sighted(
    a: JournalStore, b: JournalStore
) -> None:
    rec = sighted(a, share_path("a", "clip.mp4"))
    moved = b.enqueue(seen(share_path("b", "clip.mp4")), "enqueued by hand")
    assert (moved.id, moved.state, moved.path) == (rec.id, State.QUEUED, "/mnt/b/drop/clip.mp4")


# ---- dedupe across hosts ---------------------------------------------------------------------


def test_two_hosts_hashing_copies_at_once_exactly_one_claims_the_content(
    a: JournalStore, b: JournalStore
) -> None:
    for round_ in range(5):
        sha = f"{round_:02d}" * 32
        ids = [queued(a, f"{OWN}/{round_}.mp4").id, queued(b, f"{OWN}/{round_}.mp4").id]
        assert claimed(a).id == ids[0] and claimed(b).id == ids[1]
        results: dict[int, ContentClaim] = {}

        def hash_done(
            n: int, ids: list[int] = ids, sha: str = sha, results: dict[int, Any] = results
        ) -> None:
            host = (a, b)[n]
            results[n] = host.claim_content(ids[n], sha, "w1", max_sends=3)[0]

        in_threads(hash_done, 2)
        assert sorted(r.value for r in results.values()) == ["claimed", "in flight"], results


def test_a_copy_on_another_host_finds_the_done_twin_and_names_it(
    a: JournalStore, b: JournalStore
) -> None:
    first = queued(a, f"{OWN}/orig.mp4")
    claimed(a)
    assert a.claim_content(first.id, SHA, "w1", max_sends=3)[0] is ContentClaim.CLAIMED
    drive(a, first.id, State.DONE, asset_id="asset-1")
    copy = queued(b, f"{OWN}/copy.mp4")
    claimed(b)
    found, twin = b.claim_content(copy.id, SHA, "w1", max_sends=3)
    assert found is ContentClaim.UPLOADED
    assert twin is not None and (twin.id, twin.asset_id) == (first.id, "asset-1")
    assert twin.path == f"a:{OWN}/orig.mp4"


# ---- the crash rule and silent hosts ---------------------------------------------------------


def _in_flight(host: JournalStore, name: str) -> tuple[int, int]:
    """An uploading row and a leased confirming row held by `host` (own folder)."""
    up = queued(host, f"{OWN}/{name}-up.mp4")
    conf = queued(host, f"{OWN}/{name}-conf.mp4")
    claimed(host, "w1")
    claimed(host, "w2")
    drive(host, conf.id, State.CONFIRMING)
    return up.id, conf.id


def test_the_crash_rule_frees_only_the_calling_hosts_rows(a: JournalStore, b: JournalStore) -> None:
    a_up, a_conf = _in_flight(a, "a")
    b_up, b_conf = _in_flight(b, "b")
    share = queued(b, share_path("b", "shared.mp4"))
    claimed(b, "w3")
    assert a.recover_after_crash() == 2
    assert get(a, a_up).state is State.QUEUED and get(a, a_up).lease_owner is None
    assert get(a, a_conf).state is State.CONFIRMING and get(a, a_conf).lease_owner is None
    for file_id, state in ((b_up, State.UPLOADING), (b_conf, State.CONFIRMING)):
        rec = get(b, file_id)
        assert (rec.state, rec.host_id, rec.lease_owner is not None) == (state, "b", True)
    assert get(b, share.id).state is State.UPLOADING  # a mounts it too, but b holds it


def test_a_silent_hosts_claims_go_to_a_live_host_with_an_event_naming_it(
    a: JournalStore, b: JournalStore, clock: Clock
) -> None:
    rec = queued(b, share_path("b", "clip.mp4"))
    a.heartbeat(1)
    b.heartbeat(2)
    claimed(b, "w1", lease=3600)
    b.update(rec.id, owner="w1", asset_id="asset-1", signed_url="https://up/x?sig=1")
    clock.now += 29
    a.heartbeat(1)
    assert a.claim("w1", 60) is None  # b was heard from 29 s ago: alive
    clock.now += 2  # 31 s of silence from b
    a.heartbeat(1)
    taken = a.claim("w9", 60)
    assert taken is not None and taken.id == rec.id
    assert (taken.host_id, taken.lease_owner) == ("a", "w9")
    assert taken.path == share_path("a", "clip.mp4")
    assert (taken.asset_id, taken.signed_url) == ("asset-1", "https://up/x?sig=1")  # resumed
    event = a.history(rec.id)[-1]
    assert event.host_id == "a" and "host b went silent" in event.reason
    assert b.recover_after_crash() == 0  # b restarts: the row is a's now
    # b wakes up: its worker's lease is gone.
    assert b.transition(rec.id, State.CONFIRMING, "sent", owner="w1") is None
    assert b.claim_content(rec.id, SHA, "w1", max_sends=3)[0] is ContentClaim.LOST


def test_a_live_hosts_claims_are_never_taken(
    a: JournalStore, b: JournalStore, clock: Clock
) -> None:
    queued(b, share_path("b", "clip.mp4"))
    claimed(b, "w1", lease=3600)
    for _ in range(10):
        clock.now += 20
        a.heartbeat(1)
        b.heartbeat(2)
        assert a.claim("w1", 60) is None


def test_a_silent_hosts_own_folder_files_stay_with_it(
    a: JournalStore, b: JournalStore, clock: Clock
) -> None:
    rec = queued(b, f"{OWN}/b-only.mp4")
    b.heartbeat(2)
    claimed(b, "w1", lease=3600)
    clock.now += 120
    a.heartbeat(1)
    assert a.claim("w1", 60) is None  # a cannot reach b's own folder
    assert get(a, rec.id).host_id == "b"


def test_hosts_report_alive_last_seen_and_uploads(
    a: JournalStore, b: JournalStore, hosts: FleetHosts, clock: Clock
) -> None:
    assert a.hosts() == []
    a.heartbeat(111)
    b.heartbeat(222)
    shared = queued(b, share_path("b", "shared.mp4"))
    own = queued(b, f"{OWN}/own.mp4")
    claimed(b, "w1")
    claimed(b, "w2")
    seen_at = clock.now
    clock.now += 20
    a.heartbeat(111)
    clock.now += 15  # b: 35 s of silence, a: 15 s
    by_id = {h.host_id: h for h in a.hosts()}
    assert set(by_id) == {"a", "b"}
    assert (by_id["a"].pid, by_id["a"].alive, by_id["a"].uploading) == (111, True, ())
    assert (by_id["b"].pid, by_id["b"].alive, by_id["b"].last_seen) == (222, False, seen_at)
    assert set(by_id["b"].uploading) == {share_path("a", "shared.mp4"), f"b:{OWN}/own.mp4"}
    assert [h.host_id for h in hosts.reader().hosts()] == ["a", "b"]
    assert shared.id != own.id


# ---- the fleet's pause -----------------------------------------------------------------------


def test_a_pause_set_by_one_host_is_seen_and_cleared_by_another(
    a: JournalStore, b: JournalStore, clock: Clock
) -> None:
    a.set_pause("401 Unauthorized: check MAVI_API_KEY")
    since = clock.now
    clock.now += 5
    b.set_pause("402 Payment Required")  # the reason changes, the pause started earlier
    pause = a.pause()
    assert pause is not None and (pause.reason, pause.since) == ("402 Payment Required", since)
    b.clear_pause()
    assert a.pause() is None


def test_one_pause_probe_per_interval_for_the_whole_fleet(
    a: JournalStore, b: JournalStore, hosts: FleetHosts, clock: Clock
) -> None:
    c = hosts.host("c")
    stores = [a, b, c]
    a.set_pause("401")
    for _ in range(3):
        taken: list[bool] = []

        def probe(n: int, taken: list[bool] = taken) -> None:
            taken.append(stores[n % 3].take_pause_probe(60))

        in_threads(probe, 9)
        assert taken.count(True) == 1, taken
        clock.now += 30
        assert not any(s.take_pause_probe(60) for s in stores)
        clock.now += 30


def test_a_host_never_takes_its_own_workers_claims_for_a_silent_hosts(
    b: JournalStore, clock: Clock
) -> None:
    rec = queued(b, f"{OWN}/clip.mp4")
    b.heartbeat(2)
    claimed(b, "w1", lease=3600)
    clock.now += 60  # b's heartbeat is late (its supervisor was busy), yet b is claiming
    assert b.claim("w2", 60) is None  # w1 is still uploading it: no second upload
    assert get(b, rec.id).lease_owner == "w1"


def test_a_copy_is_not_parked_for_ever_behind_a_silent_hosts_own_file(
    a: JournalStore, b: JournalStore, clock: Clock
) -> None:
    held = queued(b, f"{OWN}/orig.mp4")
    b.heartbeat(2)
    claimed(b, "w1", lease=86400)
    assert b.claim_content(held.id, SHA, "w1", max_sends=3)[0] is ContentClaim.CLAIMED
    copy = queued(a, f"{OWN}/copy.mp4")
    claimed(a)
    assert a.claim_content(copy.id, SHA, "w1", max_sends=3)[0] is ContentClaim.IN_FLIGHT
    a.transition(
        copy.id, State.QUEUED, "parked behind its twin", owner="w1", sha256=SHA, lease_owner=None
    )
    assert a.claim("w1", 60) is None  # parked while b is alive
    a.heartbeat(1)  # a keeps beating; b falls silent
    clock.now += 7200  # b is gone for good; no other host can reach b's own folder
    a.heartbeat(1)
    taken = a.claim("w1", 60)
    assert taken is not None and taken.id == copy.id
    # b's claim on the content no longer counts: the copy uploads it (one extra upload at
    # worst if b comes back, never a file left behind).
    assert a.claim_content(copy.id, SHA, "w1", max_sends=3)[0] is ContentClaim.CLAIMED
