"""Contract: what the reports, the worker loop and `run --once` read."""

from __future__ import annotations

from conftest import Clock
from contract.helpers import Opener, at, current, obs, queued
from mavi_uploader.core.states import State
from mavi_uploader.journal import JournalStore


def test_counts_name_every_state(store: JournalStore) -> None:
    assert store.counts() == {s.value: 0 for s in State}
    at(store, "/w/a.mp4", State.DONE)
    at(store, "/w/b.mp4", State.DONE)
    at(store, "/w/c.mp4", State.FAILED)
    counts = store.counts()
    assert (counts["done"], counts["failed"], counts["queued"]) == (2, 1, 0)
    assert set(counts) == {s.value for s in State}


def test_files_newest_first_by_state_and_limit(store: JournalStore) -> None:
    a, b, c = (at(store, f"/w/{n}.mp4", State.QUEUED).id for n in "abc")
    done = at(store, "/w/d.mp4", State.DONE).id
    assert [r.id for r in store.files()] == [done, c, b, a]
    assert [r.id for r in store.files(State.QUEUED)] == [c, b, a]
    assert [r.id for r in store.files(State.QUEUED, limit=2)] == [c, b]
    assert store.files(State.CONFIRMING) == []


def test_in_states_oldest_first(store: JournalStore) -> None:
    a = at(store, "/w/a.mp4", State.UPLOADING).id
    b = at(store, "/w/b.mp4", State.CONFIRMING).id
    at(store, "/w/c.mp4", State.QUEUED)
    assert [r.id for r in store.in_states([State.CONFIRMING, State.UPLOADING])] == [a, b]
    assert store.in_states([State.SKIPPED]) == []


def test_get_and_by_path(store: JournalStore) -> None:
    first = at(store, "/w/a.mp4", State.DONE).id
    (second,) = store.sight([obs("/w/a.mp4", size=11, mtime_ns=2)])
    assert [r.id for r in store.by_path("/w/a.mp4")] == [first, second.id]
    assert store.by_path("/w/none.mp4") == []
    assert store.get(424242) is None
    assert store.history(424242) == []


def test_recent_errors_newest_first(store: JournalStore, clock: Clock) -> None:
    older = at(store, "/w/a.mp4", State.FAILED, last_error="415").id
    clock.now += 1
    newer = at(store, "/w/b.mp4", State.QUEUED, last_error="503").id
    at(store, "/w/c.mp4", State.DONE)
    assert [r.id for r in store.recent_errors()] == [newer, older]
    assert [r.id for r in store.recent_errors(limit=1)] == [newer]


def test_after_upload_owed_up_to_a_time(store: JournalStore, clock: Clock) -> None:
    early = at(store, "/w/a.mp4", State.DONE, after_upload_due=1).id
    at(store, "/w/b.mp4", State.DONE)
    clock.now += 100
    late = at(store, "/w/c.mp4", State.DUPLICATE, after_upload_due=1).id
    assert [r.id for r in store.after_upload_owed(clock.now - 50)] == [early]
    assert [r.id for r in store.after_upload_owed(clock.now)] == [early, late]
    assert current(store, early).after_upload_due


def test_unfinished_work_and_when_it_is_due(store: JournalStore, clock: Clock) -> None:
    assert not store.has_unfinished() and not store.has_work_besides_confirming()
    assert store.next_due_at() is None
    file_id = queued(store, "/w/a.mp4")
    assert store.has_unfinished() and store.has_work_besides_confirming()
    assert store.next_due_at() == 0.0  # due now
    store.update(file_id, next_attempt_at=clock.now + 30)
    assert store.next_due_at() == clock.now + 30
    store.transition(file_id, State.UPLOADING, "claimed")
    store.transition(file_id, State.CONFIRMING, "sent", next_attempt_at=clock.now + 60)
    assert store.has_unfinished() and not store.has_work_besides_confirming()
    assert store.next_due_at() == clock.now + 60
    store.transition(file_id, State.DONE, "confirmed")
    assert not store.has_unfinished() and store.next_due_at() is None


def test_a_leased_confirming_row_is_not_due(store: JournalStore, clock: Clock) -> None:
    file_id = queued(store, "/w/a.mp4")
    store.claim("w1", 60)
    store.transition(file_id, State.CONFIRMING, "sent", owner="w1", next_attempt_at=clock.now)
    assert store.next_due_at() is None


def test_reports_read_what_the_daemon_wrote(store: JournalStore, open_reader: Opener) -> None:
    file_id = at(store, "/w/a.mp4", State.DONE, asset_id="re_1").id
    reader = open_reader()
    assert reader.get(file_id) == current(store, file_id)
    assert reader.history(file_id) == store.history(file_id)
    assert reader.counts()["done"] == 1
    queued(store, "/w/b.mp4")
    assert reader.counts()["queued"] == 1  # a live view, not a snapshot
