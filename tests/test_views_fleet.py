"""What `status`, `list` and `history` add in fleet mode: the journal's kind, the hosts, and
who holds each file or made each move. Existing fields keep their shapes (tests/test_cli.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import write_video
from journal_paths import drive
from mavi_uploader.cli.main import main
from mavi_uploader.cli.views import (
    event_document,
    history_text,
    list_text,
    status_document,
    status_text,
)
from mavi_uploader.core.records import Event, HostInfo, Observation, State
from mavi_uploader.core.reporting import file_document
from mavi_uploader.journal import Fleet, open_journal
from mavi_uploader.journal.sqlite.store import Journal
from mavi_uploader.service.lock import LockHolder

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20+00:00
NOBODY = LockHolder(running=False, pid=None)
HOSTS = [
    HostInfo("bay-1", 4242, alive=True, last_seen=T0, uploading=("/mnt/studio/a.mp4",)),
    HostInfo("bay-2", 77, alive=False, last_seen=T0 - 3600.0),
]


class FleetJournal(Journal):
    """A journal that reports as the fleet's does (the views only read kind and hosts)."""

    kind = "postgresql"

    def hosts(self) -> list[HostInfo]:
        return HOSTS


@pytest.fixture
def fleet_journal(tmp_path: Path) -> Iterator[Journal]:
    journal = FleetJournal.open(tmp_path / "state")
    yield journal
    journal.close()


# --- status --------------------------------------------------------------------------------


def test_status_json_names_the_journal_and_lists_the_fleets_hosts(
    tmp_path: Path, fleet_journal: Journal
) -> None:
    doc = json.loads(json.dumps(status_document(tmp_path, fleet_journal, NOBODY)))
    assert doc["journal"] == "postgresql"
    assert doc["hosts"] == [
        {"host_id": "bay-1", "pid": 4242, "alive": True, "last_seen": "2023-11-14T22:13:20+00:00",
         "uploading": ["/mnt/studio/a.mp4"]},
        {"host_id": "bay-2", "pid": 77, "alive": False, "last_seen": "2023-11-14T21:13:20+00:00",
         "uploading": []},
    ]  # fmt: skip
    # The contract's fields are all still there, with their shapes.
    assert {"state_dir", "daemon", "paused", "counts"} <= set(doc)
    assert doc["daemon"] == {"running": False, "pid": None}


def test_status_before_the_fleets_journal_exists(tmp_path: Path) -> None:
    doc = status_document(tmp_path, None, NOBODY, kind="postgresql")
    assert (doc["journal"], doc["hosts"]) == ("postgresql", [])
    assert "hosts:\nnone yet" in status_text(doc)
    sqlite = status_document(tmp_path, None, NOBODY)
    assert sqlite["journal"] == "sqlite" and "hosts" not in sqlite


def test_status_text_shows_each_host_alive_or_silent(
    tmp_path: Path, fleet_journal: Journal
) -> None:
    text = status_text(status_document(tmp_path, fleet_journal, NOBODY))
    assert "journal    postgresql" in text
    lines = text.split("hosts:\n", 1)[1].splitlines()
    assert lines[0].split() == ["HOST", "PID", "STATE", "LAST", "SEEN", "UPLOADING"]
    assert lines[1].split() == ["bay-1", "4242", "alive", "2023-11-14T22:13:20+00:00",
                                "/mnt/studio/a.mp4"]  # fmt: skip
    assert lines[2].split() == ["bay-2", "77", "silent", "2023-11-14T21:13:20+00:00", "-"]


# --- list and history ---------------------------------------------------------------------


def fleet_row(journal: Journal, tmp_path: Path) -> int:
    watch = tmp_path / "studio"
    (rec,) = journal.sight([Observation(str(watch / "a.mp4"), str(watch), 1000, 1)])
    drive(journal, rec.id, State.DONE, asset_id="re_1")
    return rec.id


def test_list_json_names_the_host_and_the_share(tmp_path: Path, fleet_journal: Journal) -> None:
    rec = fleet_journal.get(fleet_row(fleet_journal, tmp_path))
    assert rec is not None
    doc = file_document(dataclasses.replace(rec, host_id="bay-1", share="studio"))
    assert (doc["host_id"], doc["share"]) == ("bay-1", "studio")
    for key in ("id", "path", "state", "size", "sha256", "asset_id", "attempts", "last_error",
                "updated_at"):  # fmt: skip
        assert key in doc
    assert (file_document(rec)["host_id"], file_document(rec)["share"]) == (None, None)


def test_list_text_has_a_host_column_only_in_a_fleet(
    tmp_path: Path, fleet_journal: Journal
) -> None:
    rec = fleet_journal.get(fleet_row(fleet_journal, tmp_path))
    assert rec is not None
    assert "HOST" not in list_text([rec])
    text = list_text([dataclasses.replace(rec, host_id="bay-1"), rec])
    header, held, unclaimed = text.splitlines()
    assert header.split() == ["ID", "STATE", "SIZE", "TRIES", "ASSET", "HOST", "PATH"]
    assert held.split()[-2] == "bay-1" and unclaimed.split()[-2] == "-"  # before the PATH


def test_history_shows_the_host_of_each_move(tmp_path: Path, fleet_journal: Journal) -> None:
    rec = fleet_journal.get(fleet_row(fleet_journal, tmp_path))
    assert rec is not None
    events = [
        Event(1, rec.id, T0, None, State.SETTLING, "seen", host_id="bay-2"),
        Event(2, rec.id, T0 + 5, State.SETTLING, State.QUEUED, "settled"),  # e.g. by a command
        Event(3, rec.id, T0 + 6, State.QUEUED, State.UPLOADING, "claimed", host_id="bay-1"),
    ]
    lines = history_text(rec, events).splitlines()
    assert lines[1].split() == ["WHEN", "HOST", "TRANSITION", "REASON"]
    assert lines[2].split()[1:3] == ["[bay-2]", "-"]
    assert lines[3].split()[1] == "-"
    assert lines[4].split()[1] == "[bay-1]"
    assert event_document(events[0])["host_id"] == "bay-2"
    assert event_document(events[1])["host_id"] is None
    single = history_text(rec, [dataclasses.replace(e, host_id=None) for e in events])
    assert "HOST" not in single and "[bay" not in single


# --- the commands, on a real fleet journal ------------------------------------------------


def test_fleet_reports_on_postgresql(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    studio = tmp_path / "studio"
    studio.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(
        f'journal_url = "{pg_url}"\nhost_id = "bay-1"\n'
        f'[[watch]]\npath = "{studio}"\nshare = "studio"\n'
    )
    monkeypatch.setenv("MAVI_UPLOADER_CONFIG", str(config))
    monkeypatch.setenv("MAVI_UPLOADER_STATE_DIR", str(tmp_path / "state"))
    for var in ("MAVI_API_KEY", "MAVI_UPLOADER_JOURNAL_URL", "MAVI_UPLOADER_HOST_ID"):
        monkeypatch.delenv(var, raising=False)

    def out(*args: str) -> Any:
        assert main(list(args)) == 0
        return json.loads(capsys.readouterr().out)

    before = out("status", "--json")
    assert (before["journal"], before["hosts"]) == ("postgresql", [])  # no journal yet

    clip = write_video(studio / "a.mp4", 1000)
    fleet = Fleet(url=pg_url, host_id="bay-1", shares={"studio": os.path.realpath(studio)})
    journal = open_journal(tmp_path / "state", fleet=fleet)
    try:
        journal.heartbeat(os.getpid())
        real = os.path.realpath(clip)
        journal.sight([Observation(real, os.path.realpath(studio), 1000, 1)])
        assert journal.claim("bay-1:worker-1", 60.0) is None  # still settling
        (rec,) = journal.by_path(real)
        journal.transition(rec.id, State.QUEUED, "settled")
        claimed = journal.claim("bay-1:worker-1", 60.0)
        assert claimed is not None
    finally:
        journal.close()

    doc = out("status", "--json")
    assert doc["journal"] == "postgresql"
    (host,) = doc["hosts"]
    assert (host["host_id"], host["pid"], host["alive"]) == ("bay-1", os.getpid(), True)
    assert host["last_seen"].endswith("+00:00") and host["uploading"] == [real]
    (row,) = out("list", "--json")
    assert (row["host_id"], row["share"], row["state"]) == ("bay-1", "studio", "uploading")
    (entry,) = out("history", str(claimed.id), "--json")
    assert entry["events"][-1]["host_id"] == "bay-1"
    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert "journal    postgresql" in text and "bay-1" in text and "alive" in text
