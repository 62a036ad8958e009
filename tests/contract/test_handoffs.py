"""Contract: the hand-off outbox (owed with the finishing move, claims, leases, ends, reads)."""

from __future__ import annotations

import pytest

from conftest import Clock
from contract.helpers import Opener, at, current, in_threads
from mavi_uploader.core.handoffs import HandoffEnd, HandoffKind
from mavi_uploader.core.states import State
from mavi_uploader.journal import JournalStore

CMD, HOOK = HandoffKind.COMMAND, HandoffKind.WEBHOOK
BOTH = [CMD, HOOK]


def finish(
    store: JournalStore, path: str, state: State = State.DONE, kinds: list[HandoffKind] = BOTH
) -> int:
    """A file driven to confirming/uploading, then finished owing `kinds`."""
    before = State.CONFIRMING if state is State.DONE else State.UPLOADING
    rec = at(store, path, before)
    done = store.transition(rec.id, state, "finished", expect=before, handoffs=kinds)
    assert done is not None
    return done.id


def test_the_finishing_move_owes_its_handoffs_in_the_same_transaction(
    store: JournalStore,
) -> None:
    done = finish(store, "/w/a.mp4")
    dup = finish(store, "/w/b.mp4", State.DUPLICATE, [HOOK])
    owed = store.handoffs()
    assert [(h.file_id, h.kind, h.event) for h in owed] == [
        (done, CMD, "file.done"), (done, HOOK, "file.done"), (dup, HOOK, "file.duplicate"),
    ]  # fmt: skip
    assert all(h.owed and h.attempts == 0 and h.lease_owner is None for h in owed)
    assert store.handoff_counts() == (3, 0)
    assert [h.kind for h in store.handoffs([dup])] == [HOOK]
    assert store.handoffs([]) == []


def test_a_move_that_fails_its_guard_owes_nothing(store: JournalStore) -> None:
    rec = at(store, "/w/a.mp4", State.CONFIRMING)
    assert store.transition(rec.id, State.DONE, "x", expect=State.QUEUED, handoffs=BOTH) is None
    assert store.handoffs() == [] and current(store, rec.id).state is State.CONFIRMING


def test_a_batch_that_fails_leaves_no_handoff_owed(store: JournalStore) -> None:
    rec = at(store, "/w/a.mp4", State.CONFIRMING)
    with pytest.raises(RuntimeError), store.batch():
        store.transition(rec.id, State.DONE, "ok", handoffs=BOTH)
        raise RuntimeError("crash before the commit")
    assert store.handoffs() == [] and current(store, rec.id).state is State.CONFIRMING


def test_claim_delivers_and_an_event_says_so(store: JournalStore, clock: Clock) -> None:
    file_id = finish(store, "/w/a.mp4", kinds=[CMD])
    assert store.claim_handoff("r1", 60.0, [HOOK]) is None  # only the kinds asked for
    claimed = store.claim_handoff("r1", 60.0, [CMD])
    assert claimed is not None
    handoff, rec = claimed
    assert rec.id == file_id and rec.path == "/w/a.mp4" and rec.state is State.DONE
    assert handoff.lease_owner == "r1" and handoff.lease_expires_at == clock.now + 60.0
    assert store.claim_handoff("r2", 60.0, [CMD]) is None  # leased
    assert not store.end_handoff(handoff.id, "r2", HandoffEnd.DELIVERED, "not mine")
    assert store.end_handoff(handoff.id, "r1", HandoffEnd.DELIVERED, "hand-off delivered")
    assert store.handoffs() == [] and store.handoff_counts() == (0, 0)
    last = store.history(file_id)[-1]
    assert (last.from_state, last.to_state, last.reason) == (
        State.DONE, State.DONE, "hand-off delivered",
    )  # fmt: skip
    assert store.claim_handoff("r1", 60.0, BOTH) is None


def test_a_failed_attempt_waits_for_its_next_attempt(store: JournalStore, clock: Clock) -> None:
    file_id = finish(store, "/w/a.mp4", kinds=[HOOK])
    handoff, _ = store.claim_handoff("r1", 60.0, BOTH) or pytest.fail("nothing claimed")
    assert store.end_handoff(
        handoff.id, "r1", HandoffEnd.FAILED, "failed (attempt 1: HTTP 500)",
        last_error="HTTP 500", next_attempt_at=clock.now + 10,
    )  # fmt: skip
    (owed,) = store.handoffs()
    assert (owed.attempts, owed.last_error, owed.lease_owner) == (1, "HTTP 500", None)
    assert store.handoff_counts() == (1, 1)
    assert store.claim_handoff("r1", 60.0, BOTH) is None  # not due yet
    clock.now += 10
    again, _ = store.claim_handoff("r2", 60.0, BOTH) or pytest.fail("not due again")
    assert again.id == handoff.id and again.attempts == 1
    assert store.history(file_id)[-1].reason == "failed (attempt 1: HTTP 500)"


def test_a_lapsed_lease_is_taken_over_with_an_event(store: JournalStore, clock: Clock) -> None:
    file_id = finish(store, "/w/a.mp4", kinds=[CMD])
    handoff, _ = store.claim_handoff("dead", 30.0, BOTH) or pytest.fail("nothing claimed")
    clock.now += 31
    taken, _ = store.claim_handoff("alive", 30.0, BOTH) or pytest.fail("lease not taken over")
    assert taken.id == handoff.id and taken.lease_owner == "alive"
    assert "expired; reclaimed by alive" in store.history(file_id)[-1].reason
    assert not store.end_handoff(handoff.id, "dead", HandoffEnd.DELIVERED, "late")
    assert store.end_handoff(handoff.id, "alive", HandoffEnd.DELIVERED, "delivered")


def test_crash_rule_frees_handoff_leases(store: JournalStore) -> None:
    finish(store, "/w/a.mp4", kinds=[CMD])
    assert store.claim_handoff("before-the-crash", 300.0, BOTH) is not None
    store.recover_after_crash()
    claimed = store.claim_handoff("after", 300.0, BOTH)
    assert claimed is not None and claimed[0].attempts == 0


def test_released_and_dropped(store: JournalStore) -> None:
    file_id = finish(store, "/w/a.mp4")
    first, _ = store.claim_handoff("r", 60.0, [CMD]) or pytest.fail("nothing claimed")
    events = len(store.history(file_id))
    assert store.end_handoff(first.id, "r", HandoffEnd.RELEASED, "")
    assert len(store.history(file_id)) == events  # a stop is no event
    again, _ = store.claim_handoff("r", 60.0, [CMD]) or pytest.fail("not owed after release")
    assert again.id == first.id and again.attempts == 0
    assert store.end_handoff(again.id, "r", HandoffEnd.DROPPED, "dropped: on_done unset")
    assert [h.kind for h in store.handoffs()] == [HOOK]
    assert store.history(file_id)[-1].reason == "dropped: on_done unset"


def test_one_files_handoffs_of_a_kind_go_in_order(store: JournalStore) -> None:
    rec = at(store, "/w/a.mp4", State.CONFIRMING)
    store.transition(rec.id, State.DONE, "done", handoffs=[HOOK])
    store.transition(rec.id, State.DONE, "again", handoffs=[HOOK])  # a later event
    first, _ = store.claim_handoff("r1", 60.0, [HOOK]) or pytest.fail("nothing claimed")
    assert store.claim_handoff("r2", 60.0, [HOOK]) is None  # waits for the first
    store.end_handoff(first.id, "r1", HandoffEnd.FAILED, "f", last_error="e", next_attempt_at=0)
    second, _ = store.claim_handoff("r2", 60.0, [HOOK]) or pytest.fail("nothing claimed")
    assert second.id == first.id  # still the first, never the later one before it


def test_concurrent_claims_take_each_handoff_once(open_store: Opener) -> None:
    setup = open_store()
    for n in range(12):
        finish(setup, f"/w/{n}.mp4", kinds=[HOOK])
    stores = [open_store() for _ in range(4)]
    taken: list[list[int]] = [[] for _ in stores]

    def claim_all(i: int) -> None:
        while (claimed := stores[i].claim_handoff(f"r{i}", 60.0, BOTH)) is not None:
            taken[i].append(claimed[0].id)

    in_threads(claim_all, len(stores))
    everything = [h for got in taken for h in got]
    assert len(everything) == 12 and len(set(everything)) == 12


def test_retention_keeps_files_owing_a_handoff_and_forget_drops_them(
    store: JournalStore, clock: Clock
) -> None:
    owing = finish(store, "/w/a.mp4", kinds=[HOOK])
    clean = finish(store, "/w/b.mp4", kinds=[])
    clock.now += 100
    assert store.prune(clock.now - 50, lambda rec: False) == 1
    assert store.get(clean) is None and store.get(owing) is not None
    assert store.forget([owing]) == [owing]
    assert store.handoffs() == [] and store.handoff_counts() == (0, 0)


def test_reports_see_the_outbox(store: JournalStore, open_reader: Opener) -> None:
    finish(store, "/w/a.mp4", kinds=[CMD])
    reader = open_reader()
    assert reader.handoff_counts() == (1, 0)
    assert [h.kind for h in reader.handoffs()] == [CMD]
