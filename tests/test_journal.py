"""The journal on real SQLite files: transitions, events, claims, leases, the crash rule."""

from __future__ import annotations

import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Clock
from journal_paths import drive
from mavi_uploader.core.records import Observation, State
from mavi_uploader.core.states import ACTIVE_STATES, SETTLED_FOR_GOOD
from mavi_uploader.journal import IllegalTransition, JournalError, JournalStore
from mavi_uploader.journal.sqlite import schema
from mavi_uploader.journal.sqlite.schema import SCHEMA_VERSION
from mavi_uploader.journal.sqlite.store import DB_NAME, ContentClaim, Journal


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def journal(tmp_path: Path, clock: Clock) -> Iterator[Journal]:
    j = Journal.open(tmp_path / "state", clock=clock)
    yield j
    j.close()


def obs(path: str, size: int = 10, mtime_ns: int = 1, root: str = "/w") -> Observation:
    return Observation(path, root, size, mtime_ns)


def queued(journal: Journal, path: str, size: int = 10) -> int:
    (rec,) = journal.sight([obs(path, size)])
    moved = journal.transition(rec.id, State.QUEUED, "settled", expect=State.SETTLING)
    assert moved is not None
    return rec.id


def test_state_dir_is_0700_and_database_0600(tmp_path: Path) -> None:
    Journal.open(tmp_path / "state").close()
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state" / DB_NAME).stat().st_mode) == 0o600
    conn = sqlite3.connect(tmp_path / "state" / DB_NAME)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sighting_creates_one_settling_row_with_an_event(journal: Journal) -> None:
    created = journal.sight([obs("/w/a.mp4"), obs("/w/a.mp4")])
    assert len(created) == 1
    assert created[0].state is State.SETTLING
    assert journal.sight([obs("/w/a.mp4", size=99)]) == []  # settle tick owns changes
    events = journal.history(created[0].id)
    assert [(e.from_state, e.to_state, e.reason) for e in events] == [
        (None, State.SETTLING, "seen")
    ]


def test_handled_file_is_not_sighted_again_but_a_rewrite_is_a_new_generation(
    journal: Journal,
) -> None:
    file_id = queued(journal, "/w/a.mp4")
    drive(journal, file_id, State.DONE, "confirmed", asset_id="re_1")
    assert journal.sight([obs("/w/a.mp4")]) == []
    assert journal.handled_index("/w") == {"/w/a.mp4": (10, 1)}
    (again,) = journal.sight([obs("/w/a.mp4", size=11, mtime_ns=2)])
    assert again.id != file_id
    assert [r.state for r in journal.by_path("/w/a.mp4")] == [State.DONE, State.SETTLING]
    assert "new generation" in journal.history(again.id)[0].reason


def test_a_queued_file_that_changes_goes_back_to_settling(journal: Journal) -> None:
    file_id = queued(journal, "/w/a.mp4")
    # Hashed, waiting for a retry with its asset signed: all of that was the old content.
    journal.update(file_id, sha256="ab" * 32, asset_id="re_1", signed_url="https://s/x?sig=1",
                   url_expires_at=9e9, bytes_sent=7)  # fmt: skip
    (moved,) = journal.sight([obs("/w/a.mp4", size=20, mtime_ns=5)])
    assert moved.id == file_id and moved.state is State.SETTLING
    assert (moved.size, moved.mtime_ns) == (20, 5)
    assert (moved.sha256, moved.asset_id, moved.signed_url, moved.url_expires_at) == (None,) * 4
    assert moved.bytes_sent == 0


def test_enqueue_of_a_changed_settling_file_forgets_the_old_content(journal: Journal) -> None:
    (rec,) = journal.sight([obs("/w/a.mp4", size=10, mtime_ns=1)])
    journal.update(rec.id, sha256="ab" * 32)
    moved = journal.enqueue(obs("/w/a.mp4", size=30, mtime_ns=9), "enqueued by hand")
    assert moved.id == rec.id and moved.state is State.QUEUED and moved.sha256 is None


def test_non_utf8_path_round_trips(journal: Journal) -> None:
    odd = "/w/" + b"caf\xe9 \xf0\x9f\x8e\xac.mp4".decode("utf-8", "surrogateescape")
    (rec,) = journal.sight([obs(odd)])
    assert journal.get(rec.id).path == odd  # type: ignore[union-attr]
    assert [r.id for r in journal.by_path(odd)] == [rec.id]


def test_transition_guard_refuses_wrong_state_or_owner(journal: Journal) -> None:
    file_id = queued(journal, "/w/a.mp4")
    assert journal.transition(file_id, State.DONE, "x", expect=State.CONFIRMING) is None
    claimed = journal.claim("me", 60)
    assert claimed is not None and claimed.id == file_id
    assert journal.transition(file_id, State.CONFIRMING, "x", owner="someone else") is None
    assert journal.transition(file_id, State.CONFIRMING, "sent", owner="me") is not None
    with pytest.raises(ValueError, match="not writable"):
        journal.transition(file_id, State.DONE, "x", state="done")


def test_claim_takes_due_rows_in_order_and_records_the_owner(
    journal: Journal, clock: Clock
) -> None:
    first = queued(journal, "/w/1.mp4")
    second = queued(journal, "/w/2.mp4")
    journal.update(first, next_attempt_at=clock.now + 30)
    rec = journal.claim("w1", 60)
    assert rec is not None and rec.id == second
    assert rec.state is State.UPLOADING
    assert (rec.lease_owner, rec.lease_expires_at) == ("w1", clock.now + 60)
    assert journal.claim("w2", 60) is None  # the other is not due yet
    clock.now += 31
    late = journal.claim("w2", 60)
    assert late is not None and late.id == first


def test_confirming_rows_without_a_lease_are_claimed_and_keep_their_state(
    journal: Journal,
) -> None:
    file_id = queued(journal, "/w/a.mp4")
    journal.claim("w1", 60)
    journal.transition(file_id, State.CONFIRMING, "sent", owner="w1")
    assert journal.claim("w2", 60) is None  # still leased by w1
    journal.update(file_id, owner="w1", lease_owner=None)
    rec = journal.claim("w2", 60)
    assert rec is not None and rec.state is State.CONFIRMING and rec.lease_owner == "w2"


def test_concurrent_claims_never_hand_out_a_row_twice(tmp_path: Path) -> None:
    setup = Journal.open(tmp_path / "state")
    for n in range(200):
        queued(setup, f"/w/{n}.mp4")
    setup.close()
    # Separate Journal objects = separate connections, as separate processes would have.
    journals = [Journal.open(tmp_path / "state") for _ in range(4)]
    got: list[list[int]] = [[] for _ in journals]

    def drain(index: int) -> None:
        while (rec := journals[index].claim(f"w{index}", 60)) is not None:
            got[index].append(rec.id)

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    claimed = [i for ids in got for i in ids]
    assert len(claimed) == 200 and len(set(claimed)) == 200
    for j in journals:
        j.close()


def test_crash_rule_requeues_uploads_keeps_signed_url_and_frees_confirming(
    journal: Journal, clock: Clock
) -> None:
    uploading = queued(journal, "/w/a.mp4")
    confirming = queued(journal, "/w/b.mp4")
    journal.claim("dead", 60)
    journal.transition(
        uploading, State.UPLOADING, "signed", owner="dead",
        asset_id="re_1", signed_url="https://s/x?sig=1", url_expires_at=clock.now + 9000,
    )  # fmt: skip
    journal.claim("dead", 60)
    journal.transition(confirming, State.CONFIRMING, "sent", owner="dead", asset_id="re_2")

    assert journal.recover_after_crash() == 2

    a, b = journal.get(uploading), journal.get(confirming)
    assert a is not None and b is not None
    assert a.state is State.QUEUED and a.lease_owner is None
    assert (a.asset_id, a.signed_url) == ("re_1", "https://s/x?sig=1")
    assert b.state is State.CONFIRMING and b.lease_owner is None
    assert journal.history(uploading)[-1].reason == "daemon stopped during upload; will resume"


def test_every_transition_appends_an_event_in_the_same_transaction(journal: Journal) -> None:
    file_id = queued(journal, "/w/a.mp4")
    journal.claim("w", 60)
    journal.transition(file_id, State.CONFIRMING, "sent", owner="w")
    journal.transition(file_id, State.DONE, "confirmed", owner="w")
    path = [(e.from_state, e.to_state) for e in journal.history(file_id)]
    assert path == [
        (None, State.SETTLING),
        (State.SETTLING, State.QUEUED),
        (State.QUEUED, State.UPLOADING),
        (State.UPLOADING, State.CONFIRMING),
        (State.CONFIRMING, State.DONE),
    ]


def test_failed_transaction_leaves_no_event(journal: Journal) -> None:
    file_id = queued(journal, "/w/a.mp4")
    assert journal.claim("w", 60) is not None
    before = len(journal.history(file_id))
    with pytest.raises(JournalError, match="FOREIGN KEY") as failed:
        journal.transition(file_id, State.QUEUED, "bad", duplicate_of=424242)
    assert isinstance(failed.value.__cause__, sqlite3.IntegrityError)
    assert len(journal.history(file_id)) == before
    assert journal.get(file_id).state is State.UPLOADING  # type: ignore[union-attr]


def test_a_move_outside_allowed_is_refused_and_nothing_is_written(journal: Journal) -> None:
    file_id = queued(journal, "/w/a.mp4")
    events = journal.history(file_id)
    with pytest.raises(IllegalTransition, match=f"file #{file_id}: queued -> done") as refused:
        journal.transition(file_id, State.DONE, "a shortcut", asset_id="re_1")
    assert (refused.value.file_id, refused.value.old, refused.value.new) == (
        file_id,
        State.QUEUED,
        State.DONE,
    )
    rec = journal.get(file_id)
    assert rec is not None and rec.state is State.QUEUED and rec.asset_id is None
    assert journal.history(file_id) == events
    # A guard that does not match is looked at first: None, as before, and no error.
    assert journal.transition(file_id, State.DONE, "x", expect=State.CONFIRMING) is None


def test_the_insert_path_refuses_a_state_a_new_row_may_not_start_in(journal: Journal) -> None:
    refused = pytest.raises(IllegalTransition, match=r"a new row: \(none\) -> done")
    with refused, journal.batch():
        journal._insert(journal._conn(), obs("/w/a.mp4"), State.DONE)
    assert journal.counts()["done"] == 0


def test_pause_is_stored_for_other_processes(journal: Journal, tmp_path: Path) -> None:
    journal.set_pause("401 Unauthorized: check MAVI_API_KEY")
    reader = Journal.open_existing(tmp_path / "state")
    assert reader is not None
    pause = reader.pause()
    assert pause is not None and pause.reason.startswith("401")
    journal.clear_pause()
    assert reader.pause() is None
    reader.close()


def test_enqueue_skips_settling_and_counts(journal: Journal) -> None:
    (rec,) = journal.sight([obs("/w/a.mp4")])
    moved = journal.enqueue(obs("/w/a.mp4"), "by hand")
    assert moved.id == rec.id and moved.state is State.QUEUED
    fresh = journal.enqueue(obs("/w/b.mp4"), "by hand")
    assert fresh.state is State.QUEUED
    assert journal.counts()["queued"] == 2


def test_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    Journal.open(tmp_path / "state").close()
    conn = sqlite3.connect(tmp_path / "state" / DB_NAME)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(JournalError, match="newer than this"):
        Journal.open(tmp_path / "state")


def test_corrupt_database_is_refused_not_recreated(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    garbage = b"this is not a database" * 1000
    (state / DB_NAME).write_bytes(garbage)
    with pytest.raises(JournalError, match=str(state / DB_NAME)):
        Journal.open(state)
    assert (state / DB_NAME).read_bytes() == garbage


def test_an_expired_lease_is_reclaimed_with_an_event(journal: Journal, clock: Clock) -> None:
    file_id = queued(journal, "/w/a.mp4")
    journal.claim("hung-worker", 60)
    assert journal.claim("w2", 60) is None  # leased
    clock.now += 61
    rec = journal.claim("w2", 60)
    assert rec is not None and rec.id == file_id
    assert rec.state is State.UPLOADING and rec.lease_owner == "w2"
    assert "lease of hung-worker expired" in journal.history(file_id)[-1].reason
    # The hung worker's late moves are refused: it no longer owns the row.
    assert journal.transition(file_id, State.DONE, "late", owner="hung-worker") is None


def test_a_version_1_journal_is_migrated_in_place(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    conn = sqlite3.connect(state / DB_NAME)
    for statement in schema._split(schema._MIGRATIONS[1]):
        conn.execute(statement)
    conn.execute(
        "INSERT INTO files (path, state, signed_url, url_expires_at, created_at, updated_at)"
        " VALUES (?, 'done', 'https://storage.test/u?X-Goog-Signature=abc', 9e9, 1, 1)",
        (b"/w/old.mp4",),
    )
    conn.execute(
        "INSERT INTO files (path, state, sha256, created_at, updated_at)"
        " VALUES (?, 'confirming', 'ab', 1, 7)",
        (b"/w/confirming.mp4",),
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    journal = Journal.open(state)
    (old,) = journal.by_path("/w/old.mp4")
    assert old.state is State.DONE and old.upload_started_at is None
    assert not old.after_upload_due  # v3: nothing owed for files finished before it
    assert old.signed_url is None and old.url_expires_at is None  # v4: a spent credential
    assert old.server_failures == 0 and old.sends == 0 and old.mavi_status is None
    journal.update(old.id, progress_at=5.0, after_upload_due=1)
    (confirming,) = journal.by_path("/w/confirming.mp4")
    assert confirming.accepted_at == 7.0 and confirming.sends == 1  # its patience can run out
    assert confirming.content_claimed
    again = journal.get(old.id)
    assert again is not None and again.progress_at == 5.0 and again.after_upload_due
    journal.close()
    conn = sqlite3.connect(state / DB_NAME)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4


def test_status_reads_a_journal_its_daemon_has_not_migrated_yet(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    conn = sqlite3.connect(state / DB_NAME)
    for version in (1, 2):
        for statement in schema._split(schema._MIGRATIONS[version]):
            conn.execute(statement)
    conn.execute(
        "INSERT INTO files (path, state, created_at, updated_at) VALUES (?, 'done', 1, 1)",
        (b"/w/old.mp4",),
    )
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    reader = Journal.open_existing(state)
    assert reader is not None
    (old,) = reader.by_path("/w/old.mp4")
    assert old.state is State.DONE and not old.after_upload_due
    reader.close()


def test_batch_commits_many_transitions_together_or_none(journal: Journal) -> None:
    first, second = queued(journal, "/w/1.mp4"), queued(journal, "/w/2.mp4")
    with pytest.raises(RuntimeError), journal.batch():
        journal.transition(first, State.UPLOADING, "x")
        journal.transition(second, State.UPLOADING, "x")
        raise RuntimeError("disk full, say")
    assert journal.counts()["uploading"] == 0 and journal.counts()["queued"] == 2
    with journal.batch():
        journal.transition(first, State.UPLOADING, "x")
        journal.transition(second, State.UPLOADING, "x")
    assert journal.counts()["uploading"] == 2


def test_reports_see_no_journal_until_its_tables_exist(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / DB_NAME).touch()  # what a starting daemon has made before its first commit
    assert Journal.open_existing(state) is None
    Journal.open(state).close()
    reader = Journal.open_existing(state)
    assert reader is not None and reader.counts()["done"] == 0
    reader.close()


def test_content_is_claimed_once_whichever_copy_hashes_first(journal: Journal) -> None:
    older, younger = queued(journal, "/w/a.mp4"), queued(journal, "/w/b.mp4")
    first = journal.claim("w1", 60)
    second = journal.claim("w2", 60)
    assert first is not None and second is not None and first.id == older
    assert journal.claim_content(younger, "ab" * 32, "w2", max_sends=3) == (
        ContentClaim.CLAIMED,
        None,
    )
    claim, twin = journal.claim_content(older, "ab" * 32, "w1", max_sends=3)
    assert claim is ContentClaim.IN_FLIGHT and twin is not None and twin.id == younger
    assert (
        journal.claim_content(older, "ab" * 32, "someone-else", max_sends=3)[0]
        is ContentClaim.IN_FLIGHT
    )
    journal.transition(younger, State.DONE, "confirmed")
    claim, twin = journal.claim_content(older, "ab" * 32, "w1", max_sends=3)
    assert claim is ContentClaim.UPLOADED and twin is not None and twin.id == younger


def test_copies_that_both_waited_do_not_wait_for_each_other(journal: Journal) -> None:
    # Both keep their sha256 while queued; the next claim decides afresh.
    a, b = queued(journal, "/w/a.mp4"), queued(journal, "/w/b.mp4")
    for file_id in (a, b):
        journal.update(file_id, sha256="cd" * 32, content_claimed=1)
    assert journal.claim("w1", 60) is not None and journal.claim("w2", 60) is not None
    assert journal.claim_content(a, "cd" * 32, "w1", max_sends=3) == (ContentClaim.CLAIMED, None)
    assert journal.claim_content(b, "cd" * 32, "w2", max_sends=3)[0] is ContentClaim.IN_FLIGHT


def test_a_content_claim_needs_the_lease(journal: Journal) -> None:
    file_id = queued(journal, "/w/a.mp4")
    assert journal.claim("w1", 60) is not None
    assert journal.claim_content(file_id, "ef" * 32, "w2", max_sends=3) == (ContentClaim.LOST, None)


# ---- skips: a rule's verdict is looked at again, a content verdict holds ----------------------


def test_a_file_skipped_by_a_rule_is_journaled_again_once_sighted(journal: Journal) -> None:
    """The watcher only sights files the current rules accept: a rule skip no longer holds."""
    skipped = journal.record_rejection(obs("/w/a.xyz"), "extension 'xyz' is not configured")
    assert journal.handled_index("/w") == {}
    (again,) = journal.sight([obs("/w/a.xyz")])
    assert again.state is State.SETTLING and again.id != skipped.id
    (event,) = journal.history(again.id)
    assert event.reason == "now a candidate (skipped before: extension 'xyz' is not configured)"
    assert journal.sight([obs("/w/a.xyz")]) == []  # one new generation, not one per rescan


def test_enqueue_after_a_rule_skip_queues_the_same_version(journal: Journal) -> None:
    journal.record_rejection(obs("/elsewhere/a.mp4", root=""), "outside every watch folder")
    rec = journal.enqueue(obs("/elsewhere/a.mp4"), "enqueued by hand")
    assert rec.state is State.QUEUED


def test_an_empty_file_stays_skipped_while_it_is_unchanged(journal: Journal) -> None:
    (rec,) = journal.sight([obs("/w/empty.mp4", size=0)])
    drive(journal, rec.id, State.SKIPPED, "empty file (0 bytes)", last_error="empty file")
    assert journal.handled_index("/w") == {"/w/empty.mp4": (0, 1)}
    assert journal.sight([obs("/w/empty.mp4", size=0)]) == []
    assert journal.enqueue(obs("/w/empty.mp4", size=0), "by hand").id == rec.id
    (new,) = journal.sight([obs("/w/empty.mp4", size=5, mtime_ns=2)])  # written at last
    assert new.state is State.SETTLING


def test_a_copy_of_content_mavi_refused_too_often_is_not_sent_again(journal: Journal) -> None:
    spent, copy = queued(journal, "/w/a.mp4"), queued(journal, "/w/b.mp4")
    drive(journal, spent, State.FAILED, "MAVI said FAILED 4 times", sha256="ab" * 32, sends=4)
    assert journal.claim("w1", 60) is not None
    claim, twin = journal.claim_content(copy, "ab" * 32, "w1", max_sends=3)
    assert claim is ContentClaim.SPENT and twin is not None and twin.id == spent
    assert journal.claim_content(copy, "ab" * 32, "w1", max_sends=4)[0] is ContentClaim.CLAIMED


def test_a_copy_waiting_for_its_twin_is_parked_until_the_twin_leaves_flight(
    journal: Journal,
) -> None:
    twin, copy = queued(journal, "/w/a.mp4"), queued(journal, "/w/b.mp4")
    assert journal.claim("w1", 60) is not None
    journal.claim_content(twin, "ab" * 32, "w1", max_sends=3)
    journal.update(copy, sha256="ab" * 32)  # hashed, found the twin in flight, queued
    assert journal.claim("w2", 60) is None  # parked: not claimed, not due
    assert journal.next_due_at() is None
    journal.transition(
        twin, State.CONFIRMING, "storage took it", lease_owner=None, next_attempt_at=9e9
    )
    assert journal.claim("w2", 60) is None  # still in flight
    assert not journal.has_work_besides_confirming()  # run --once may stop waiting
    journal.transition(twin, State.DONE, "confirmed")
    woken = journal.claim("w2", 60)
    assert woken is not None and woken.id == copy


# ---- the schema's state lists: generated from the enum, as the field has them ---------------


def test_schema_state_lists_are_the_text_existing_journals_were_created_with(
    tmp_path: Path,
) -> None:
    """Generated from State; a new state needs a migration (a CHECK cannot be altered)."""
    assert schema._STATES == (
        "('settling', 'queued', 'uploading', 'confirming', 'done', 'duplicate', 'failed',"
        " 'vanished', 'skipped')"
    )
    assert schema._ACTIVE == "('settling', 'queued', 'uploading', 'confirming')"
    assert schema.among(ACTIVE_STATES) == schema._ACTIVE
    assert schema.among(SETTLED_FOR_GOOD) == "('done', 'duplicate', 'vanished', 'skipped')"
    v4 = [" ".join(s.split()) for s in schema._split(schema._MIGRATIONS[4])]
    assert v4[-3:] == [
        "UPDATE files SET signed_url = NULL, url_expires_at = NULL"
        " WHERE state IN ('done', 'duplicate', 'vanished', 'skipped')",
        "UPDATE files SET accepted_at = updated_at, sends = 1 WHERE state = 'confirming'",
        "UPDATE files SET content_claimed = 1 WHERE state = 'confirming' AND sha256 IS NOT NULL",
    ]
    Journal.open(tmp_path / "state").close()
    conn = sqlite3.connect(tmp_path / "state" / DB_NAME)
    tables = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"))
    conn.close()
    assert f"CHECK (state IN {schema._STATES})" in tables["files"]
    assert tables["files_one_active_per_path"].endswith(f"WHERE state IN {schema._ACTIVE}")


def test_the_database_refuses_a_state_outside_the_enum(journal: Journal) -> None:
    (rec,) = journal.sight([obs("/w/a.mp4")])
    conn = sqlite3.connect(journal.db_path)
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute("UPDATE files SET state = 'lost' WHERE id = ?", (rec.id,))
    conn.close()


# ---- driver errors: JournalError at the store's boundary --------------------------------------


def test_every_method_of_the_interface_wraps_driver_errors() -> None:
    members = [name for name in vars(JournalStore) if not name.startswith("_")]
    assert len(members) == 28
    for name in members:
        assert hasattr(getattr(Journal, name), "__wrapped__"), name


def test_a_constraint_error_is_a_journal_error_caused_by_the_driver(journal: Journal) -> None:
    (rec,) = journal.sight([obs("/w/a.mp4")])
    drive(journal, rec.id, State.UPLOADING)
    with pytest.raises(JournalError, match="FOREIGN KEY") as failed:
        journal.transition(rec.id, State.QUEUED, "bad", duplicate_of=424242)
    assert isinstance(failed.value.__cause__, sqlite3.IntegrityError)
    assert str(journal.db_path) in str(failed.value)


def test_a_full_disk_is_a_journal_error_and_the_journal_works_again_after(
    journal: Journal,
) -> None:
    journal.sight([obs("/w/first.mp4")])
    conn = journal._conn()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")  # as full as a full disk
    many = [obs(f"/w/{'x' * 200}{n}.mp4") for n in range(2000)]
    with pytest.raises(JournalError, match="database or disk is full") as full:
        journal.sight(many)
    assert isinstance(full.value.__cause__, sqlite3.OperationalError)
    assert journal.counts()["settling"] == 1  # the whole batch rolled back
    with pytest.raises(JournalError, match="disk is full"), journal.batch():
        journal.sight(many)
    conn.execute("PRAGMA max_page_count = 1073741823")  # space is back
    assert len(journal.sight(many)) == 2000


def test_reports_wrap_driver_errors_too(tmp_path: Path) -> None:
    Journal.open(tmp_path / "state").close()
    reader = Journal.open_existing(tmp_path / "state")
    assert reader is not None
    with pytest.raises(JournalError, match="readonly"):
        reader.set_pause("a report never writes")
    reader.close()
