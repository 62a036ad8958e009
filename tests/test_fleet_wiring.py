"""Fleet mode's wiring: every place that opens the journal passes the config's fleet.

The PostgreSQL store is stood in for by a module that hands out SQLite journals and records
what it was asked: these tests are about who asks for which journal, not about the store.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from conftest import API_KEY, write_video
from journal_paths import drive
from mavi_uploader.cli.main import main
from mavi_uploader.config.model import Config
from mavi_uploader.config.settings import load_config
from mavi_uploader.core.records import Observation, State
from mavi_uploader.journal import Fleet, JournalError, JournalStore, open_for_reports, open_journal
from mavi_uploader.journal.sqlite.store import Journal
from mavi_uploader.redaction import redact
from mavi_uploader.service.daemon import Daemon
from mavi_uploader.service.fleet import fleet_of, journal_kind

URL = "postgresql://mavi:Hunter2-pass@db.example:5432/uploads"
T0 = 1_700_000_000.0


class _NoLock:
    def release(self) -> None:
        return None


@dataclass
class FakeFleetStore:
    """Stands in for mavi_uploader.journal.postgres: SQLite journals in `where`."""

    where: Path
    opened: list[tuple[Fleet, Callable[[], float] | None, bool]] = field(default_factory=list)
    read: list[Fleet] = field(default_factory=list)
    locked: list[Fleet] = field(default_factory=list)
    refuse: bool = False

    def open_fleet_journal(
        self, fleet: Fleet, *, clock: Callable[[], float] | None = None, migrate_schema: bool = True
    ) -> JournalStore:
        self.opened.append((fleet, clock, migrate_schema))
        if self.refuse:
            raise JournalError("the fleet's database refuses (test)")
        return Journal.open(self.where)

    def lock_host(self, fleet: Fleet) -> _NoLock:
        self.locked.append(fleet)
        return _NoLock()

    def open_fleet_reader(self, fleet: Fleet) -> JournalStore | None:
        self.read.append(fleet)
        return Journal.open_existing(self.where)


@pytest.fixture
def fake_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeFleetStore:
    store = FakeFleetStore(tmp_path / "fleet-db")
    module = types.ModuleType("mavi_uploader.journal.postgres")
    module.open_fleet_journal = store.open_fleet_journal  # type: ignore[attr-defined]
    module.open_fleet_reader = store.open_fleet_reader  # type: ignore[attr-defined]
    module.lock_host = store.lock_host  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mavi_uploader.journal.postgres", module)
    return store


def fleet_config(tmp_path: Path, extra: str = "", url: str | None = URL) -> Config:
    (tmp_path / "studio").mkdir(exist_ok=True)
    (tmp_path / "own").mkdir(exist_ok=True)
    config_file = tmp_path / "config.toml"
    config_file.write_text(
        (f'journal_url = "{url}"\n' if url else "")
        + f'host_id = "bay-1"\nhost_timeout_seconds = 12\n{extra}'
        f'[[watch]]\npath = "{tmp_path / "studio"}"\n'
        + ('share = "studio"\n' if url else "")
        + f'[[watch]]\npath = "{tmp_path / "own"}"\n'
    )
    env = {"MAVI_API_KEY": API_KEY, "MAVI_API_BASE": "http://127.0.0.1:9/serve/api/v2",
           "MAVI_UPLOADER_STATE_DIR": str(tmp_path / "state")}  # fmt: skip
    return load_config(config_path=str(config_file), env=env)


# --- fleet_of ----------------------------------------------------------------------------


def test_no_journal_url_no_fleet(tmp_path: Path) -> None:
    config = fleet_config(tmp_path, url=None)
    assert fleet_of(config) is None
    assert journal_kind(config) == "sqlite"


def test_the_fleet_of_a_config(tmp_path: Path) -> None:
    config = fleet_config(tmp_path)
    assert fleet_of(config) == Fleet(
        url=URL, host_id="bay-1", shares={"studio": str(tmp_path / "studio")}, host_timeout=12.0
    )
    assert journal_kind(config) == "postgresql"


def test_a_share_is_known_by_its_real_path(tmp_path: Path) -> None:
    (tmp_path / "mnt").mkdir()
    os.symlink(tmp_path / "mnt", tmp_path / "link")
    config_file = tmp_path / "config.toml"
    config_file.write_text(
        f'journal_url = "{URL}"\n[[watch]]\npath = "{tmp_path / "link"}"\nshare = "s"\n'
    )
    config = load_config(config_path=str(config_file), env={"MAVI_API_KEY": API_KEY})
    fleet = fleet_of(config)
    assert fleet is not None
    assert fleet.shares == {"s": os.path.realpath(tmp_path / "mnt")}  # as WatchRoot.root
    assert "Hunter2" not in repr(fleet)


# --- the journal factories ---------------------------------------------------------------


def test_factories_without_a_fleet_open_sqlite(tmp_path: Path, fake_store: FakeFleetStore) -> None:
    assert open_for_reports(tmp_path / "state") is None
    journal = open_journal(tmp_path / "state")
    assert journal.kind == "sqlite"
    journal.close()
    reader = open_for_reports(tmp_path / "state")
    assert reader is not None and reader.kind == "sqlite"
    reader.close()
    assert (fake_store.opened, fake_store.read) == ([], [])


def test_factories_with_a_fleet_open_the_fleets_store(
    tmp_path: Path, fake_store: FakeFleetStore
) -> None:
    fleet = Fleet(url=URL, host_id="bay-1")
    assert open_for_reports(tmp_path / "state", fleet) is None  # no fleet journal yet
    open_journal(tmp_path / "state", fleet=fleet, migrate_schema=False).close()

    def clock() -> float:
        return T0

    open_journal(tmp_path / "state", fleet=fleet, clock=clock).close()
    reader = open_for_reports(tmp_path / "state", fleet)
    assert reader is not None
    reader.close()
    # The store's own clock unless a test injects one (the database's, in a fleet).
    assert fake_store.opened == [(fleet, None, False), (fleet, clock, True)]
    assert fake_store.read == [fleet, fleet]
    assert not (tmp_path / "state").exists()  # nothing of SQLite's in the state dir


# --- the command line --------------------------------------------------------------------


def test_every_command_opens_the_fleets_journal(
    tmp_path: Path,
    fake_store: FakeFleetStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = fleet_config(tmp_path)
    monkeypatch.setenv("MAVI_UPLOADER_CONFIG", str(config.config_file))
    monkeypatch.setenv("MAVI_UPLOADER_STATE_DIR", str(tmp_path / "state"))
    for var in (
        "MAVI_API_KEY",
        "MAVI_API_BASE",
        "MAVI_UPLOADER_JOURNAL_URL",
        "MAVI_UPLOADER_HOST_ID",
    ):
        monkeypatch.delenv(var, raising=False)
    expected = fleet_of(config)
    clip = write_video(tmp_path / "own" / "clip.mp4", 100)

    assert main(["status", "--json"]) == 0
    assert main(["enqueue", str(clip)]) == 0
    assert main(["list", "--json"]) == 0
    assert main(["history", str(clip)]) == 0
    journal = Journal.open(fake_store.where)
    drive(journal, 1, State.FAILED)
    journal.close()
    assert main(["retry", "1"]) == 0
    journal = Journal.open(fake_store.where)
    drive(journal, 1, State.DONE)
    journal.close()
    assert main(["forget", "1"]) == 0
    out = capsys.readouterr().out
    assert "queued #1" in out and "forgot #1" in out

    assert [f for f, _, _ in fake_store.opened] == [expected] * 3  # enqueue, retry, forget
    assert fake_store.read == [expected] * 3  # status, list, history
    assert not (tmp_path / "state" / "journal.db").exists()


def test_a_report_shows_no_password_when_the_fleets_journal_fails(
    tmp_path: Path,
    fake_store: FakeFleetStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A password of its own: registered secrets are process-wide, another test's would do.
    config = fleet_config(tmp_path, url="postgresql://mavi:Cli-pass-4d1@db.example/uploads")
    monkeypatch.setenv("MAVI_UPLOADER_CONFIG", str(config.config_file))
    monkeypatch.setenv("MAVI_UPLOADER_STATE_DIR", str(tmp_path / "state"))
    fake_store.refuse = True
    code = main(["enqueue", str(tmp_path / "own" / "x.mp4")])
    assert code == 1
    assert "the fleet's database refuses" in capsys.readouterr().err
    assert (
        redact(f"psql: {URL} failed")
        == "psql: postgresql://mavi:<redacted>@db.example:5432/uploads failed"
    )
    assert redact("password Cli-pass-4d1 was refused") == "password <redacted> was refused"


# --- the daemon --------------------------------------------------------------------------


def test_the_daemon_opens_the_fleets_journal_and_masks_its_password(
    tmp_path: Path, fake_store: FakeFleetStore
) -> None:
    config = fleet_config(tmp_path, url="postgresql://mavi:Daemon-pass-9c2@db.example/uploads")
    fake_store.refuse = True  # stop right after the open: the wiring is what is tested here
    daemon = Daemon(config)
    try:
        with pytest.raises(JournalError):
            daemon.run()
    finally:
        daemon.signals.close()
    assert fake_store.locked == [fleet_of(config)]  # the host id first: the crash rule is ours
    assert fake_store.opened == [(fleet_of(config), None, True)]
    assert redact("login Daemon-pass-9c2") == "login <redacted>"  # registered, as the API key


def reload_with(
    tmp_path: Path, old: Config, new: Config
) -> tuple[Daemon, list[MutableMapping[str, Any]]]:
    journal = Journal.open(tmp_path / "journal")
    daemon = Daemon(old, reload_config=lambda: new)
    parts = daemon._assemble(journal)
    jobs = daemon._jobs(parts, T0)
    try:
        with capture_logs() as logs:
            daemon._reload(parts, jobs)
    finally:
        daemon._halt(parts)  # an applied reload starts workers: they end before the journal
        daemon._loops.join(10.0)
        parts.watcher.stop()
        daemon.signals.close()
        journal.close()
    return daemon, logs


def test_a_reload_that_changes_the_fleet_is_refused(tmp_path: Path) -> None:
    old = fleet_config(tmp_path)
    for changed in (
        fleet_config(tmp_path, url="postgresql://other/db"),
        fleet_config(tmp_path, url=None),
        load_config(
            config_path=str(old.config_file),
            env={"MAVI_API_KEY": API_KEY, "MAVI_UPLOADER_HOST_ID": "bay-2"},
        ),
    ):
        daemon, logs = reload_with(tmp_path, old, changed)
        assert daemon.config is old
        assert any("need a restart" in e["event"] and e["log_level"] == "error" for e in logs)


def test_a_reload_that_keeps_the_fleet_is_applied(tmp_path: Path) -> None:
    old = fleet_config(tmp_path)
    new = fleet_config(tmp_path, "concurrency = 3\n")
    daemon, _ = reload_with(tmp_path, old, new)
    assert daemon.config is new


def test_observation_paths_under_a_share_start_with_its_fleet_path(tmp_path: Path) -> None:
    """The store tells a share's files by the prefix fleet_of gives: the watcher's roots."""
    from mavi_uploader.watch.roots import watch_roots  # noqa: PLC0415

    config = fleet_config(tmp_path)
    fleet = fleet_of(config)
    assert fleet is not None
    roots = {r.root for r in watch_roots(config)}
    assert set(fleet.shares.values()) <= roots
    obs = Observation(os.path.join(fleet.shares["studio"], "a.mp4"), fleet.shares["studio"], 1, 1)
    assert obs.watch_root in roots
