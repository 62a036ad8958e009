"""Contract: claims and claim races, leases and their reclaim, the crash rule."""

from __future__ import annotations

import threading

from conftest import Clock
from contract.helpers import Opener, current, in_threads, obs, queued
from mavi_uploader.core.states import State
from mavi_uploader.journal import ContentClaim, JournalStore, Work


def test_claim_takes_due_rows_in_order_and_records_the_owner(
    store: JournalStore, clock: Clock
) -> None:
    first = queued(store, "/w/1.mp4")
    second = queued(store, "/w/2.mp4")
    store.update(first, next_attempt_at=clock.now + 30)
    rec = store.claim("w1", 60)
    assert rec is not None and rec.id == second
    assert rec.state is State.UPLOADING
    assert (rec.lease_owner, rec.lease_expires_at) == ("w1", clock.now + 60)
    assert store.claim("w2", 60) is None  # the other is not due yet
    clock.now += 31
    late = store.claim("w2", 60)
    assert late is not None and late.id == first


def test_a_claim_is_an_event_naming_the_owner(store: JournalStore) -> None:
    file_id = queued(store, "/w/a.mp4")
    store.claim("host:42:worker-1", 60)
    last = store.history(file_id)[-1]
    assert (last.from_state, last.to_state) == (State.QUEUED, State.UPLOADING)
    assert last.reason == "claimed by host:42:worker-1"


def test_claim_finds_nothing_in_an_empty_or_settling_journal(store: JournalStore) -> None:
    assert store.claim("w1", 60) is None
    store.sight([])
    (rec,) = store.sight([obs("/w/a.mp4")])
    assert store.claim("w1", 60) is None
    assert current(store, rec.id).state is State.SETTLING


def test_confirming_rows_without_a_lease_are_claimed_and_keep_their_state(
    store: JournalStore,
) -> None:
    file_id = queued(store, "/w/a.mp4")
    store.claim("w1", 60)
    store.transition(file_id, State.CONFIRMING, "sent", owner="w1")
    assert store.claim("w2", 60) is None  # still leased by w1
    store.update(file_id, owner="w1", lease_owner=None)
    events = store.history(file_id)
    rec = store.claim("w2", 60)
    assert rec is not None and rec.state is State.CONFIRMING and rec.lease_owner == "w2"
    assert store.history(file_id) == events  # a routine poll: no event


def test_a_claim_without_uploads_takes_confirming_rows_only(
    store: JournalStore, clock: Clock
) -> None:
    """A bandwidth `pause` window: confirmations go on, no upload starts or is taken over."""
    stale = queued(store, "/w/s.mp4")
    store.claim("hung-worker", 60)
    confirm = queued(store, "/w/c.mp4")
    store.claim("w1", 60)
    store.transition(confirm, State.CONFIRMING, "sent", owner="w1")
    store.update(confirm, owner="w1", lease_owner=None)
    waiting = queued(store, "/w/q.mp4")
    clock.now += 61  # the hung worker's lease has expired
    rec = store.claim("w2", 60, work=Work.CONFIRMATIONS)
    assert rec is not None and rec.id == confirm and rec.state is State.CONFIRMING
    assert store.claim("w3", 60, work=Work.CONFIRMATIONS) is None
    assert current(store, waiting).state is State.QUEUED
    assert current(store, stale).lease_owner == "hung-worker"
    clock.now += 61  # w2 hung too: its confirmation is taken over, still without uploads
    again = store.claim("w3", 60, work=Work.CONFIRMATIONS)
    assert again is not None and again.id == confirm and again.lease_owner == "w3"
    taken = {store.claim("w4", 60).id for _ in range(2)}  # type: ignore[union-attr]
    assert taken == {stale, waiting}


def test_a_row_keeps_its_content_claim_from_one_claim_to_the_next(store: JournalStore) -> None:
    file_id = queued(store, "/w/a.mp4")
    store.update(file_id, sha256="ab" * 32, content_claimed=1)
    rec = store.claim("w1", 60)
    assert rec is not None and rec.id == file_id and rec.content_claimed
    assert rec.sha256 == "ab" * 32  # the hash stays: the file has not changed


def test_concurrent_claims_never_hand_out_a_row_twice(open_store: Opener) -> None:
    setup = open_store()
    for n in range(200):
        queued(setup, f"/w/{n}.mp4")
    # Separate stores = separate connections, as separate processes would have.
    stores = [open_store() for _ in range(4)]
    got: list[list[int]] = [[] for _ in stores]

    def drain(index: int) -> None:
        while (rec := stores[index].claim(f"w{index}", 60)) is not None:
            got[index].append(rec.id)

    in_threads(drain, 4)
    claimed = [i for ids in got for i in ids]
    assert len(claimed) == 200 and len(set(claimed)) == 200


def test_claims_racing_for_one_row_hand_it_to_exactly_one(open_store: Opener) -> None:
    setup = open_store()
    file_id = queued(setup, "/w/a.mp4")
    stores = [setup, open_store(), open_store(), open_store()]
    start = threading.Barrier(len(stores))
    got: list[int | None] = [None] * len(stores)

    def race(index: int) -> None:
        start.wait(timeout=10)
        rec = stores[index].claim(f"w{index}", 60)
        got[index] = rec.id if rec else None

    in_threads(race, len(stores))
    assert got.count(file_id) == 1 and got.count(None) == len(stores) - 1
    winner = f"w{got.index(file_id)}"
    assert current(setup, file_id).lease_owner == winner


def test_workers_sharing_one_store_never_get_the_same_row(store: JournalStore) -> None:
    """The daemon's workers share one store object (a connection per thread inside)."""
    for n in range(60):
        queued(store, f"/w/{n}.mp4")
    got: list[list[int]] = [[] for _ in range(3)]

    def drain(index: int) -> None:
        while (rec := store.claim(f"w{index}", 60)) is not None:
            got[index].append(rec.id)

    in_threads(drain, 3)
    claimed = [i for ids in got for i in ids]
    assert len(claimed) == 60 and len(set(claimed)) == 60


# ---- leases ------------------------------------------------------------------------------


def test_an_expired_lease_is_reclaimed_with_an_event(store: JournalStore, clock: Clock) -> None:
    file_id = queued(store, "/w/a.mp4")
    store.claim("hung-worker", 60)
    assert store.claim("w2", 60) is None  # leased
    clock.now += 61
    rec = store.claim("w2", 60)
    assert rec is not None and rec.id == file_id
    assert rec.state is State.UPLOADING and rec.lease_owner == "w2"
    assert "lease of hung-worker expired" in store.history(file_id)[-1].reason
    # The hung worker's late moves are refused: it no longer owns the row.
    assert store.transition(file_id, State.DONE, "late", owner="hung-worker") is None


def test_the_old_owner_can_neither_renew_nor_claim_content_after_a_reclaim(
    store: JournalStore, clock: Clock
) -> None:
    file_id = queued(store, "/w/a.mp4")
    store.claim("hung-worker", 60)
    assert store.update(file_id, owner="hung-worker", lease_expires_at=clock.now + 60)
    clock.now += 121
    assert store.claim("w2", 60) is not None
    assert not store.update(file_id, owner="hung-worker", lease_expires_at=clock.now + 60)
    claim = store.claim_content(file_id, "ab" * 32, "hung-worker", max_sends=3)
    assert claim == (ContentClaim.LOST, None)
    assert current(store, file_id).lease_owner == "w2"


def test_a_renewed_lease_is_not_reclaimed(store: JournalStore, clock: Clock) -> None:
    file_id = queued(store, "/w/a.mp4")
    store.claim("w1", 60)
    clock.now += 50
    assert store.update(file_id, owner="w1", lease_expires_at=clock.now + 60)
    clock.now += 50
    assert store.claim("w2", 60) is None


def test_an_expired_lease_on_a_confirming_row_is_reclaimed_too(
    store: JournalStore, clock: Clock
) -> None:
    file_id = queued(store, "/w/a.mp4")
    store.claim("w1", 60)
    store.transition(file_id, State.CONFIRMING, "sent", owner="w1", next_attempt_at=9e9)
    clock.now += 61
    rec = store.claim("w2", 60)
    assert rec is not None and rec.state is State.CONFIRMING and rec.lease_owner == "w2"
    last = store.history(file_id)[-1]
    assert (last.from_state, last.to_state) == (State.CONFIRMING, State.CONFIRMING)
    assert last.reason == "lease of w1 expired; reclaimed by w2"


# ---- the crash rule ----------------------------------------------------------------------


def test_crash_rule_requeues_uploads_keeps_signed_url_and_frees_confirming(
    store: JournalStore, clock: Clock
) -> None:
    uploading = queued(store, "/w/a.mp4")
    confirming = queued(store, "/w/b.mp4")
    idle = queued(store, "/w/c.mp4")
    store.claim("dead", 60)
    store.transition(
        uploading, State.UPLOADING, "signed", owner="dead",
        asset_id="re_1", signed_url="https://s/x?sig=1", url_expires_at=clock.now + 9000,
    )  # fmt: skip
    store.claim("dead", 60)
    store.transition(confirming, State.CONFIRMING, "sent", owner="dead", asset_id="re_2")
    store.update(uploading, next_attempt_at=clock.now + 50)
    confirming_events = store.history(confirming)

    assert store.recover_after_crash() == 2

    a, b = current(store, uploading), current(store, confirming)
    assert a.state is State.QUEUED and a.lease_owner is None and a.lease_expires_at is None
    assert a.next_attempt_at is None  # due at once
    assert (a.asset_id, a.signed_url) == ("re_1", "https://s/x?sig=1")
    assert b.state is State.CONFIRMING and b.lease_owner is None and b.lease_expires_at is None
    assert store.history(uploading)[-1].reason == "daemon stopped during upload; will resume"
    assert store.history(confirming) == confirming_events  # it resumes polling, no event
    assert current(store, idle).state is State.QUEUED
    assert store.recover_after_crash() == 0
    resumed = store.claim("alive", 60)
    assert resumed is not None and resumed.id in (uploading, confirming)


def test_upload_workers_and_the_confirmer_each_claim_only_their_work(
    store: JournalStore, clock: Clock
) -> None:
    poll, upload = queued(store, "/w/a.mp4"), queued(store, "/w/b.mp4")
    assert store.claim("w1", 60, work=Work.UPLOADS) is not None  # a.mp4
    store.transition(poll, State.CONFIRMING, "sent", owner="w1", lease_owner=None,
                     next_attempt_at=clock.now + 5)  # fmt: skip
    assert store.claim("confirmer", 60, work=Work.CONFIRMATIONS) is None  # not due yet
    clock.now += 5
    got = store.claim("confirmer", 60, work=Work.CONFIRMATIONS)
    assert got is not None and got.id == poll  # the queued b.mp4 is not the confirmer's
    assert store.claim("confirmer", 60, work=Work.CONFIRMATIONS) is None
    store.update(poll, owner="confirmer", lease_owner=None, next_attempt_at=clock.now)
    taken = store.claim("w2", 60, work=Work.UPLOADS)
    assert taken is not None and taken.id == upload  # never the due poll
    assert store.claim("w3", 60, work=Work.UPLOADS) is None


def test_each_kind_of_work_reclaims_its_own_lapsed_leases(
    store: JournalStore, clock: Clock
) -> None:
    sending, polling = queued(store, "/w/a.mp4"), queued(store, "/w/b.mp4")
    assert store.claim("w1", 60) is not None and store.claim("w2", 60) is not None
    store.transition(polling, State.CONFIRMING, "sent", owner="w2")  # w2 polls, then hangs
    clock.now += 61
    confirmer = store.claim("confirmer", 60, work=Work.CONFIRMATIONS)
    assert confirmer is not None and confirmer.id == polling
    uploader = store.claim("w3", 60, work=Work.UPLOADS)
    assert uploader is not None and uploader.id == sending and uploader.state is State.UPLOADING
