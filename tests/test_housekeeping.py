"""Journal retention and `forget`: old finished rows go, with their events; nothing that
stops a re-upload of a file still on disk is ever pruned."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Clock, write_video
from journal_paths import drive
from mavi_uploader.cli.main import main
from mavi_uploader.core.records import Observation, State
from mavi_uploader.journal.sqlite.store import Journal
from mavi_uploader.service import housekeeping

DAY = 86400.0


@pytest.fixture
def clock() -> Clock:
    return Clock(1_000_000_000.0)


@pytest.fixture
def journal(tmp_path: Path, clock: Clock) -> Iterator[Journal]:
    j = Journal.open(tmp_path / "state", clock=clock)
    yield j
    j.close()


def finished(journal: Journal, path: Path, state: State, size: int = 100) -> int:
    if not path.exists():
        write_video(path, size)
    st = path.stat()
    (rec,) = journal.sight([Observation(str(path), str(path.parent), st.st_size, st.st_mtime_ns)])
    drive(journal, rec.id, state)
    return rec.id


def test_prune_keeps_young_rows_failed_rows_and_markers_of_files_on_disk(
    journal: Journal, clock: Clock, tmp_path: Path
) -> None:
    on_disk = finished(journal, tmp_path / "kept.mp4", State.DONE)
    gone_path = tmp_path / "gone.mp4"
    gone = finished(journal, gone_path, State.DONE)
    gone_path.unlink()
    failed = finished(journal, tmp_path / "bad.mp4", State.FAILED)
    rewritten = tmp_path / "rewritten.mp4"
    old_generation = finished(journal, rewritten, State.DONE)
    write_video(rewritten, 200, seed=1)
    new_generation = finished(journal, rewritten, State.DONE)
    clock.now += 91 * DAY
    young = finished(journal, tmp_path / "young.mp4", State.DONE)
    young_path = tmp_path / "young.mp4"
    young_path.unlink()

    removed = housekeeping.prune(journal, keep_done_days=90, now=clock.now)

    assert removed == 2
    assert journal.get(gone) is None and journal.history(gone) == []
    assert journal.get(old_generation) is None
    for kept in (on_disk, failed, new_generation, young):
        assert journal.get(kept) is not None
    assert housekeeping.prune(journal, keep_done_days=0, now=clock.now + 1000 * DAY) == 0


def test_pruning_the_original_keeps_its_duplicate_pointing_at_the_asset(
    journal: Journal, clock: Clock, tmp_path: Path
) -> None:
    path = tmp_path / "orig.mp4"
    original = finished(journal, path, State.DONE)
    journal.update(original, asset_id="re_1")
    copy = finished(journal, tmp_path / "copy.mp4", State.DUPLICATE)
    journal.update(copy, duplicate_of=original, asset_id="re_1")
    path.unlink()
    clock.now += 100 * DAY
    assert housekeeping.prune(journal, keep_done_days=90, now=clock.now) == 1
    dup = journal.get(copy)
    assert dup is not None and dup.duplicate_of is None and dup.asset_id == "re_1"


def test_forget_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    watch = tmp_path / "watch"
    watch.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(f'[[watch]]\npath = "{watch}"\n')
    monkeypatch.setenv("MAVI_UPLOADER_CONFIG", str(config))
    monkeypatch.setenv("MAVI_UPLOADER_STATE_DIR", str(tmp_path / "state"))
    journal = Journal.open(tmp_path / "state")
    done = finished(journal, watch / "a.mp4", State.DONE)
    busy = finished(journal, watch / "b.mp4", State.QUEUED)
    journal.claim("w", 60)
    journal.close()
    assert main(["forget", str(watch / "a.mp4")]) == 0
    assert f"forgot #{done}" in capsys.readouterr().out
    assert main(["forget", str(busy)]) == 1
    assert "is uploading" in capsys.readouterr().err
    assert main(["list", "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert done not in rows and rows[busy]["state"] == "uploading"
    # a.mp4 is still on disk: it is journaled again, to be uploaded again
    assert [r["state"] for i, r in rows.items() if i != busy] == ["settling"]


def test_forget_of_a_file_still_on_disk_journals_it_for_upload_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    watch = tmp_path / "watch"
    clip = write_video(watch / "a.mp4", 5_000)
    config = tmp_path / "config.toml"
    config.write_text(f'[[watch]]\npath = "{watch}"\n')
    monkeypatch.setenv("MAVI_UPLOADER_CONFIG", str(config))
    monkeypatch.setenv("MAVI_UPLOADER_STATE_DIR", str(tmp_path / "state"))
    journal = Journal.open(tmp_path / "state")
    st = clip.stat()
    (rec,) = journal.sight([Observation(str(clip), str(watch), st.st_size, st.st_mtime_ns)])
    drive(journal, rec.id, State.DONE, "uploaded")
    assert main(["forget", str(rec.id)]) == 0
    assert "to be uploaded" in capsys.readouterr().out
    (again,) = journal.by_path(str(clip))
    assert again.id != rec.id and again.state is State.SETTLING  # the daemon takes it from here
    journal.close()


def test_forget_in_the_journal_never_deletes_a_row_in_flight(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "state")
    done = finished(journal, tmp_path / "a.mp4", State.DONE)
    flying = finished(journal, tmp_path / "b.mp4", State.QUEUED)
    journal.claim("w", 60)  # claimed between a caller's look and its delete
    assert journal.forget([done, flying]) == [done]
    assert journal.get(flying) is not None
    journal.close()
