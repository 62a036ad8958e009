"""Contract: the sight rules (new rows, generations, skips), `enqueue` and refusals."""

from __future__ import annotations

from conftest import Clock
from contract.helpers import at, current, drive, obs, queued
from mavi_uploader.core.records import EMPTY_FILE
from mavi_uploader.core.states import State
from mavi_uploader.journal import JournalStore


def test_sighting_creates_one_settling_row_with_an_event(store: JournalStore) -> None:
    created = store.sight([obs("/w/a.mp4"), obs("/w/a.mp4")])
    assert len(created) == 1
    assert created[0].state is State.SETTLING
    assert store.sight([obs("/w/a.mp4", size=99)]) == []  # settle tick owns changes
    events = store.history(created[0].id)
    assert [(e.from_state, e.to_state, e.reason) for e in events] == [
        (None, State.SETTLING, "seen")
    ]


def test_a_sighted_row_records_what_was_seen(store: JournalStore, clock: Clock) -> None:
    (rec,) = store.sight([obs("/w/a.mp4", size=42, mtime_ns=7, root="/w")])
    assert (rec.path, rec.watch_root, rec.size, rec.mtime_ns) == ("/w/a.mp4", "/w", 42, 7)
    assert rec.stable_since == clock.now and rec.attempts == 0 and rec.lease_owner is None


def test_handled_file_is_not_sighted_again_but_a_rewrite_is_a_new_generation(
    store: JournalStore,
) -> None:
    file_id = queued(store, "/w/a.mp4")
    drive(store, file_id, State.DONE, "confirmed", asset_id="re_1")
    assert store.sight([obs("/w/a.mp4")]) == []
    assert store.handled_index("/w") == {"/w/a.mp4": (10, 1)}
    (again,) = store.sight([obs("/w/a.mp4", size=11, mtime_ns=2)])
    assert again.id != file_id
    assert [r.state for r in store.by_path("/w/a.mp4")] == [State.DONE, State.SETTLING]
    assert "new generation" in store.history(again.id)[0].reason


def test_a_vanished_file_that_comes_back_is_a_new_generation(store: JournalStore) -> None:
    gone = at(store, "/w/a.mp4", State.VANISHED)
    assert store.handled_index("/w") == {}
    (back,) = store.sight([obs("/w/a.mp4")])  # the very same size and mtime
    assert back.id != gone.id and back.state is State.SETTLING
    assert store.history(back.id)[0].reason == "seen again after vanished (new generation)"


def test_a_queued_file_that_changes_goes_back_to_settling(
    store: JournalStore, clock: Clock
) -> None:
    file_id = queued(store, "/w/a.mp4")
    # Hashed, waiting for a retry with its asset signed: all of that was the old content.
    store.update(file_id, sha256="ab" * 32, asset_id="re_1", signed_url="https://s/x?sig=1",
                 url_expires_at=9e9, bytes_sent=7, sends=2, accepted_at=5.0)  # fmt: skip
    clock.now += 3
    (moved,) = store.sight([obs("/w/a.mp4", size=20, mtime_ns=5)])
    assert moved.id == file_id and moved.state is State.SETTLING
    assert (moved.size, moved.mtime_ns, moved.stable_since) == (20, 5, clock.now)
    assert (moved.sha256, moved.asset_id, moved.signed_url, moved.url_expires_at) == (None,) * 4
    assert (moved.bytes_sent, moved.sends, moved.accepted_at) == (0, 0, None)
    last = store.history(file_id)[-1]
    assert (last.from_state, last.to_state, last.reason) == (
        State.QUEUED,
        State.SETTLING,
        "changed while queued",
    )


def test_a_row_in_flight_is_left_alone_by_sightings(store: JournalStore) -> None:
    file_id = queued(store, "/w/a.mp4")
    store.claim("w1", 60)
    assert store.sight([obs("/w/a.mp4", size=99, mtime_ns=9)]) == []
    rec = current(store, file_id)
    assert (rec.state, rec.size) == (State.UPLOADING, 10)  # the worker sees the change


def test_a_deferred_settling_file_is_looked_at_again_once_sighted(
    store: JournalStore, clock: Clock
) -> None:
    (rec,) = store.sight([obs("/w/a.mp4")])
    store.update(rec.id, next_attempt_at=clock.now + 60, last_error="cannot read the file")
    assert store.sight([obs("/w/a.mp4")]) == []
    assert current(store, rec.id).next_attempt_at is None


def test_non_utf8_path_round_trips(store: JournalStore) -> None:
    odd = "/w/" + b"caf\xe9 \xf0\x9f\x8e\xac.mp4".decode("utf-8", "surrogateescape")
    (rec,) = store.sight([obs(odd)])
    assert current(store, rec.id).path == odd
    assert [r.id for r in store.by_path(odd)] == [rec.id]
    assert store.handled_index("/w") == {}


def test_handled_index_holds_the_latest_handled_row_per_path_under_a_root(
    store: JournalStore,
) -> None:
    at(store, "/w/done.mp4", State.DONE)
    at(store, "/w/sub/failed.mp4", State.FAILED)
    at(store, "/w/dup.mp4", State.DUPLICATE)
    at(store, "/w/gone.mp4", State.VANISHED)
    at(store, "/w/busy.mp4", State.UPLOADING)
    at(store, "/other/done.mp4", State.DONE)
    at(store, "/w2/done.mp4", State.DONE)  # a sibling sharing the prefix "/w"
    assert store.handled_index("/w") == {
        "/w/done.mp4": (10, 1),
        "/w/sub/failed.mp4": (10, 1),
        "/w/dup.mp4": (10, 1),
    }


# ---- enqueue and refusals ------------------------------------------------------------------


def test_enqueue_skips_settling_and_counts(store: JournalStore) -> None:
    (rec,) = store.sight([obs("/w/a.mp4")])
    moved = store.enqueue(obs("/w/a.mp4"), "by hand")
    assert moved.id == rec.id and moved.state is State.QUEUED
    fresh = store.enqueue(obs("/w/b.mp4"), "by hand")
    assert fresh.state is State.QUEUED
    assert store.counts()["queued"] == 2
    assert [(e.from_state, e.to_state, e.reason) for e in store.history(fresh.id)] == [
        (None, State.QUEUED, "by hand")
    ]


def test_enqueue_of_a_changed_settling_file_forgets_the_old_content(store: JournalStore) -> None:
    (rec,) = store.sight([obs("/w/a.mp4", size=10, mtime_ns=1)])
    store.update(rec.id, sha256="ab" * 32)
    moved = store.enqueue(obs("/w/a.mp4", size=30, mtime_ns=9), "enqueued by hand")
    assert moved.id == rec.id and moved.state is State.QUEUED and moved.sha256 is None
    assert (moved.size, moved.mtime_ns) == (30, 9)


def test_enqueue_returns_a_live_row_as_it_is(store: JournalStore) -> None:
    file_id = queued(store, "/w/a.mp4")
    store.claim("w1", 60)
    events = store.history(file_id)
    rec = store.enqueue(obs("/w/a.mp4"), "by hand")
    assert rec.id == file_id and rec.state is State.UPLOADING
    assert store.history(file_id) == events


def test_enqueue_of_a_version_already_handled_returns_the_finished_row(
    store: JournalStore,
) -> None:
    done = at(store, "/w/a.mp4", State.DONE)
    assert store.enqueue(obs("/w/a.mp4"), "by hand") == done
    again = store.enqueue(obs("/w/a.mp4", size=11, mtime_ns=2), "by hand")
    assert again.id != done.id and again.state is State.QUEUED


def test_a_rejection_is_a_skipped_row_with_its_reason(store: JournalStore) -> None:
    rec = store.record_rejection(obs("/elsewhere/a.mp4", root=""), "outside every watch folder")
    assert rec.state is State.SKIPPED and rec.last_error == "outside every watch folder"
    assert rec.watch_root is None
    assert [(e.from_state, e.to_state, e.reason) for e in store.history(rec.id)] == [
        (None, State.SKIPPED, "outside every watch folder")
    ]


# ---- skips: a rule's verdict is looked at again, a content verdict holds ----------------------


def test_a_file_skipped_by_a_rule_is_journaled_again_once_sighted(store: JournalStore) -> None:
    """The watcher only sights files the current rules accept: a rule skip no longer holds."""
    skipped = store.record_rejection(obs("/w/a.xyz"), "extension 'xyz' is not configured")
    assert store.handled_index("/w") == {}
    (again,) = store.sight([obs("/w/a.xyz")])
    assert again.state is State.SETTLING and again.id != skipped.id
    (event,) = store.history(again.id)
    assert event.reason == "now a candidate (skipped before: extension 'xyz' is not configured)"
    assert store.sight([obs("/w/a.xyz")]) == []  # one new generation, not one per rescan


def test_enqueue_after_a_rule_skip_queues_the_same_version(store: JournalStore) -> None:
    store.record_rejection(obs("/elsewhere/a.mp4", root=""), "outside every watch folder")
    rec = store.enqueue(obs("/elsewhere/a.mp4"), "enqueued by hand")
    assert rec.state is State.QUEUED


def test_an_empty_file_stays_skipped_while_it_is_unchanged(store: JournalStore) -> None:
    (rec,) = store.sight([obs("/w/empty.mp4", size=0)])
    drive(store, rec.id, State.SKIPPED, "empty file (0 bytes)", last_error=EMPTY_FILE)
    assert store.handled_index("/w") == {"/w/empty.mp4": (0, 1)}
    assert store.sight([obs("/w/empty.mp4", size=0)]) == []
    assert store.enqueue(obs("/w/empty.mp4", size=0), "by hand").id == rec.id
    (new,) = store.sight([obs("/w/empty.mp4", size=5, mtime_ns=2)])  # written at last
    assert new.state is State.SETTLING
