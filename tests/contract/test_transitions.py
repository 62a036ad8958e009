"""Contract: transitions and their events, the guard, batches, and ALLOWED enforced."""

from __future__ import annotations

import pytest

from conftest import Clock
from contract.helpers import at, current, obs, queued, sighted
from journal_paths import drive
from mavi_uploader.core.states import ALLOWED, State, is_allowed
from mavi_uploader.journal import IllegalTransition, JournalError, JournalStore

Move = tuple[State, State]
ALLOWED_MOVES: list[Move] = [
    (old, new) for old in State for new in State if old in ALLOWED and is_allowed(old, new)
]
REFUSED_MOVES: list[Move] = [
    (old, new) for old in State for new in State if not is_allowed(old, new)
]


def named(move: Move) -> str:
    return f"{move[0].value}->{move[1].value}"


@pytest.mark.parametrize("move", ALLOWED_MOVES, ids=named)
def test_every_allowed_move_is_written_with_its_event(store: JournalStore, move: Move) -> None:
    old, new = move
    file_id = at(store, "/w/a.mp4", old).id
    before = store.history(file_id)
    moved = store.transition(file_id, new, "because", expect=old, last_error="noted")
    assert moved is not None and moved.state is new and moved.last_error == "noted"
    assert current(store, file_id) == moved
    events = store.history(file_id)
    assert events[: len(before)] == before and len(events) == len(before) + 1
    assert (events[-1].from_state, events[-1].to_state, events[-1].reason) == (old, new, "because")


@pytest.mark.parametrize("move", REFUSED_MOVES, ids=named)
def test_every_other_move_is_refused_and_nothing_is_written(
    store: JournalStore, move: Move
) -> None:
    old, new = move
    rec = at(store, "/w/a.mp4", old)
    events = store.history(rec.id)
    with pytest.raises(IllegalTransition) as refused:
        store.transition(rec.id, new, "a shortcut", last_error="must not be written")
    assert (refused.value.file_id, refused.value.old, refused.value.new) == (rec.id, old, new)
    assert f"#{rec.id}: {old.value} -> {new.value}" in str(refused.value)
    assert not isinstance(refused.value, JournalError)  # a bug: never waited out
    assert current(store, rec.id) == rec
    assert store.history(rec.id) == events


def test_a_refused_move_undoes_the_batch_it_is_in(store: JournalStore) -> None:
    first, second = queued(store, "/w/1.mp4"), queued(store, "/w/2.mp4")
    with pytest.raises(IllegalTransition), store.batch():
        store.transition(first, State.UPLOADING, "claimed")
        store.transition(second, State.DONE, "a shortcut")
    assert current(store, first).state is State.QUEUED
    assert [e.to_state for e in store.history(first)] == [State.SETTLING, State.QUEUED]


def test_a_guard_that_does_not_match_writes_nothing_and_raises_nothing(
    store: JournalStore,
) -> None:
    file_id = queued(store, "/w/a.mp4")
    # queued -> done is not allowed either, but the guard is looked at first: the row is
    # no longer where the caller thought it was (someone moved it), which is no bug.
    assert store.transition(file_id, State.DONE, "x", expect=State.CONFIRMING) is None
    assert store.transition(file_id, State.DONE, "x", owner="nobody") is None
    assert current(store, file_id).state is State.QUEUED


def test_transition_guard_refuses_wrong_state_or_owner(store: JournalStore) -> None:
    file_id = queued(store, "/w/a.mp4")
    assert store.transition(file_id, State.DONE, "x", expect=State.CONFIRMING) is None
    claimed = store.claim("me", 60)
    assert claimed is not None and claimed.id == file_id
    assert store.transition(file_id, State.CONFIRMING, "x", owner="someone else") is None
    assert store.transition(file_id, State.CONFIRMING, "sent", owner="me") is not None
    with pytest.raises(ValueError, match="not writable"):
        store.transition(file_id, State.DONE, "x", state="done")


def test_expect_may_list_several_states(store: JournalStore) -> None:
    file_id = queued(store, "/w/a.mp4")
    moved = store.transition(file_id, State.UPLOADING, "x", expect=[State.SETTLING, State.QUEUED])
    assert moved is not None and moved.state is State.UPLOADING


def test_every_transition_appends_an_event_in_the_same_transaction(store: JournalStore) -> None:
    file_id = queued(store, "/w/a.mp4")
    store.claim("w", 60)
    store.transition(file_id, State.CONFIRMING, "sent", owner="w")
    store.transition(file_id, State.DONE, "confirmed", owner="w")
    path = [(e.from_state, e.to_state) for e in store.history(file_id)]
    assert path == [
        (None, State.SETTLING),
        (State.SETTLING, State.QUEUED),
        (State.QUEUED, State.UPLOADING),
        (State.UPLOADING, State.CONFIRMING),
        (State.CONFIRMING, State.DONE),
    ]


def test_rows_and_events_carry_the_journal_clock(store: JournalStore, clock: Clock) -> None:
    assert store.now() == clock.now
    file_id = sighted(store, "/w/a.mp4")
    clock.now += 5
    drive(store, file_id, State.QUEUED)
    rec = current(store, file_id)
    assert (rec.created_at, rec.updated_at) == (clock.now - 5, clock.now)
    assert [e.at for e in store.history(file_id)] == [clock.now - 5, clock.now]


def test_a_same_state_move_writes_an_event_only_when_it_has_a_reason(
    store: JournalStore,
) -> None:
    rec = at(store, "/w/a.mp4", State.DONE, after_upload_due=1)
    before = len(store.history(rec.id))
    moved = store.transition(rec.id, State.DONE, "", expect=State.DONE, last_error="x")
    assert moved is not None and moved.last_error == "x"
    assert len(store.history(rec.id)) == before
    store.transition(rec.id, State.DONE, "after_upload: kept", after_upload_due=0)
    (event,) = store.history(rec.id)[before:]
    assert (event.from_state, event.to_state, event.reason) == (
        State.DONE,
        State.DONE,
        "after_upload: kept",
    )


def test_a_failed_transaction_leaves_no_event_and_raises_a_journal_error(
    store: JournalStore,
) -> None:
    file_id = queued(store, "/w/a.mp4")
    assert store.claim("w", 60) is not None
    before = len(store.history(file_id))
    with pytest.raises(JournalError) as failed:  # the driver's error (a foreign key), wrapped
        store.transition(file_id, State.QUEUED, "bad", duplicate_of=424242)
    assert not isinstance(failed.value, IllegalTransition)
    assert len(store.history(file_id)) == before
    assert current(store, file_id).state is State.UPLOADING


def test_update_changes_columns_without_an_event_under_the_owners_lease(
    store: JournalStore,
) -> None:
    file_id = queued(store, "/w/a.mp4")
    assert store.claim("w1", 60) is not None
    before = store.history(file_id)
    assert store.update(file_id, owner="w1", bytes_sent=5, progress_at=7.0)
    assert not store.update(file_id, owner="w2", bytes_sent=9)
    rec = current(store, file_id)
    assert (rec.state, rec.bytes_sent, rec.progress_at) == (State.UPLOADING, 5, 7.0)
    assert store.history(file_id) == before
    with pytest.raises(ValueError, match="not writable"):
        store.update(file_id, state="done")
    assert not store.update(424242, last_error="no such row")


def test_batch_commits_many_transitions_together_or_none(store: JournalStore) -> None:
    first, second = queued(store, "/w/1.mp4"), queued(store, "/w/2.mp4")
    with pytest.raises(RuntimeError), store.batch():
        store.transition(first, State.UPLOADING, "x")
        store.transition(second, State.UPLOADING, "x")
        raise RuntimeError("disk full, say")
    assert store.counts()["uploading"] == 0 and store.counts()["queued"] == 2
    assert len(store.history(first)) == 2
    with store.batch():
        store.transition(first, State.UPLOADING, "x")
        store.transition(second, State.UPLOADING, "x")
    assert store.counts()["uploading"] == 2


def test_drive_helper_takes_each_state_by_allowed_moves(store: JournalStore) -> None:
    """The set-up every test here relies on reaches each state (and starts a new row)."""
    for n, state in enumerate(State):
        rec = drive(store, store.sight([obs(f"/w/{n}.mp4")])[0].id, state)
        assert rec.state is state
