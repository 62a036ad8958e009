"""The SQLite store specifically: files and permissions, WAL, migrations, a corrupt or newer
file, the schema's state lists, driver errors wrapped. What every store must do is in
tests/contract/ (run on this store too)."""

from __future__ import annotations

import inspect
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Clock
from journal_paths import drive
from mavi_uploader.core.records import Observation
from mavi_uploader.core.states import ACTIVE_STATES, SETTLED_FOR_GOOD, State
from mavi_uploader.journal import (
    IllegalTransition,
    JournalError,
    JournalStore,
    open_for_reports,
    open_journal,
    sql,
)
from mavi_uploader.journal.sqlite import schema
from mavi_uploader.journal.sqlite.schema import SCHEMA_VERSION
from mavi_uploader.journal.sqlite.store import DB_NAME, Journal

PACKAGE = Path(__file__).resolve().parent.parent / "daemon" / "mavi_uploader"


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


def test_state_dir_is_0700_and_database_0600(tmp_path: Path) -> None:
    Journal.open(tmp_path / "state").close()
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state" / DB_NAME).stat().st_mode) == 0o600
    conn = sqlite3.connect(tmp_path / "state" / DB_NAME)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


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
    # v5: an outbox, empty: nothing is owed for files finished before it
    assert journal.handoff_counts() == (0, 0) and journal.handoffs() == []
    journal.close()
    conn = sqlite3.connect(state / DB_NAME)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5


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


def test_reports_see_no_journal_until_its_tables_exist(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / DB_NAME).touch()  # what a starting daemon has made before its first commit
    assert Journal.open_existing(state) is None
    Journal.open(state).close()
    reader = Journal.open_existing(state)
    assert reader is not None and reader.counts()["done"] == 0
    reader.close()


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
    assert sql.among(ACTIVE_STATES) == schema._ACTIVE
    assert sql.among(SETTLED_FOR_GOOD) == "('done', 'duplicate', 'vanished', 'skipped')"
    v4 = [" ".join(s.split()) for s in schema._split(schema._MIGRATIONS[4])]
    assert v4[-3:] == [
        "UPDATE files SET signed_url = NULL, url_expires_at = NULL"
        " WHERE state IN ('done', 'duplicate', 'failed', 'vanished', 'skipped')",
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


# ---- ALLOWED at the one place rows are written ------------------------------------------------


def test_the_insert_path_refuses_a_state_a_new_row_may_not_start_in(journal: Journal) -> None:
    refused = pytest.raises(IllegalTransition, match=r"a new row: \(none\) -> done")
    with refused, journal.batch():
        journal._insert(journal._conn(), obs("/w/a.mp4"), State.DONE)
    assert journal.counts()["done"] == 0


# ---- driver errors: JournalError at the store's boundary --------------------------------------


def test_every_method_of_the_interface_wraps_driver_errors() -> None:
    members = [name for name in vars(JournalStore) if not name.startswith("_")]
    assert len(members) == 37
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


# ---- the store stays private to journal/ ----------------------------------------------------


def test_nothing_outside_the_journal_package_imports_a_store() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "journal" not in path.relative_to(PACKAGE).parts[:1]
        and ("journal.sqlite" in path.read_text() or "import sqlite3" in path.read_text())
    ]
    assert offenders == []


def test_the_sqlite_store_is_what_the_factories_open(tmp_path: Path) -> None:
    assert open_for_reports(tmp_path / "state") is None
    store = open_journal(tmp_path / "state")
    assert isinstance(store, Journal) and inspect.isclass(Journal)
    store.close()
    reader = open_for_reports(tmp_path / "state")
    assert isinstance(reader, Journal)
    reader.close()
