"""Contract: retention (`prune`), `forget`, and the pause flag shared with other processes."""

from __future__ import annotations

from conftest import Clock
from contract.helpers import Opener, at, current, drive, obs, queued
from mavi_uploader.core.records import FileRecord
from mavi_uploader.core.states import State
from mavi_uploader.journal import JournalStore


def test_prune_deletes_old_finished_rows_but_keeps_failed_young_active_and_markers(
    store: JournalStore, clock: Clock
) -> None:
    old_generation = at(store, "/w/a.mp4", State.DONE).id
    (rewritten,) = store.sight([obs("/w/a.mp4", size=11, mtime_ns=2)])
    latest_on_disk = drive(store, rewritten.id, State.DONE).id
    vanished = at(store, "/w/b.mp4", State.VANISHED).id
    failed = at(store, "/w/c.mp4", State.FAILED).id
    waiting = queued(store, "/w/d.mp4")
    skipped = store.record_rejection(obs("/w/e.xyz"), "extension 'xyz' is not configured").id
    clock.now += 100
    young = at(store, "/w/f.mp4", State.DUPLICATE).id
    asked: list[str] = []

    def still_there(rec: FileRecord) -> bool:
        asked.append(rec.path)
        return rec.path == "/w/a.mp4"

    assert store.prune(clock.now - 50, still_there) == 3
    assert sorted(asked) == ["/w/a.mp4", "/w/b.mp4", "/w/e.xyz"]  # only the latest rows
    left = {r.id for r in store.files()}
    assert left == {latest_on_disk, failed, waiting, young}
    for gone in (old_generation, vanished, skipped):
        assert store.get(gone) is None and store.history(gone) == []
    assert store.prune(clock.now - 50, still_there) == 0


def test_forget_deletes_finished_rows_and_their_events_never_a_row_in_flight(
    store: JournalStore,
) -> None:
    done = at(store, "/w/a.mp4", State.DONE, asset_id="re_1").id
    uploading = at(store, "/w/b.mp4", State.UPLOADING).id
    settling = at(store, "/w/c.mp4", State.SETTLING).id
    failed = at(store, "/w/d.mp4", State.FAILED).id
    assert sorted(store.forget([done, uploading, settling, failed, 424242])) == [done, failed]
    assert store.get(done) is None and store.history(done) == []
    assert current(store, uploading).state is State.UPLOADING
    assert current(store, settling).state is State.SETTLING
    assert store.forget([]) == []


def test_forgetting_the_original_leaves_its_duplicate_the_asset(store: JournalStore) -> None:
    original = at(store, "/w/a.mp4", State.DONE, asset_id="re_1").id
    copy = at(store, "/w/b.mp4", State.DUPLICATE, duplicate_of=original, asset_id="re_1").id
    assert store.forget([original]) == [original]
    rec = current(store, copy)
    assert rec.duplicate_of is None and rec.asset_id == "re_1"


def test_forget_takes_many_ids(store: JournalStore) -> None:
    with store.batch():  # one commit
        ids = [at(store, f"/w/{n}.mp4", State.VANISHED).id for n in range(1200)]
    assert sorted(store.forget(ids)) == ids
    assert store.counts()["vanished"] == 0


# ---- the pause -----------------------------------------------------------------------------


def test_pause_is_stored_for_other_processes(store: JournalStore, open_reader: Opener) -> None:
    store.set_pause("401 Unauthorized: check MAVI_API_KEY")
    reader = open_reader()
    pause = reader.pause()
    assert pause is not None and pause.reason.startswith("401")
    store.clear_pause()
    assert reader.pause() is None


def test_a_new_reason_keeps_the_time_the_pause_began(store: JournalStore, clock: Clock) -> None:
    assert store.pause() is None
    store.set_pause("401 Unauthorized")
    began = clock.now
    clock.now += 60
    store.set_pause("402 Payment Required")
    pause = store.pause()
    assert pause is not None and (pause.reason, pause.since) == ("402 Payment Required", began)
    store.clear_pause()
    store.clear_pause()  # clearing twice is harmless
    assert store.pause() is None
    store.set_pause("403 Forbidden")
    again = store.pause()
    assert again is not None and again.since == clock.now
