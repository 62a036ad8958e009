"""The supervisor's periodic jobs, a pass at a time on an injected clock (no threads, no sleeps)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import API_KEY
from mavi_uploader.config.model import Config
from mavi_uploader.config.settings import load_config
from mavi_uploader.config.timers import Timers
from mavi_uploader.journal.sqlite.store import Journal
from mavi_uploader.service.daemon import Daemon
from mavi_uploader.service.supervisor import PeriodicJobs

T0 = 1000.0


def counting(ran: list[str], name: str) -> Callable[[], None]:
    return lambda: ran.append(name)


def test_a_job_runs_first_when_asked_then_every_period() -> None:
    ran: list[str] = []
    jobs = PeriodicJobs()
    jobs.add("now", 5.0, counting(ran, "now"), first=T0)
    jobs.add("later", 10.0, counting(ran, "later"), first=T0 + 10.0)
    assert jobs.names == ["now", "later"]
    assert jobs.run_due(T0) == ["now"]
    assert jobs.run_due(T0 + 4.9) == []
    assert jobs.run_due(T0 + 5.0) == ["now"]
    assert jobs.run_due(T0 + 10.0) == ["now", "later"]  # due again 5 s after the pass
    assert ran == ["now", "now", "now", "later"]


def test_a_job_every_0_runs_at_every_pass() -> None:
    ran: list[str] = []
    jobs = PeriodicJobs()
    jobs.add("each", 0.0, counting(ran, "each"), first=T0)
    for n in range(3):
        assert jobs.run_due(T0 + n * 0.01) == ["each"]
    assert len(ran) == 3


def test_a_late_pass_runs_a_job_once_and_counts_its_period_from_there() -> None:
    jobs = PeriodicJobs()
    jobs.add("hourly", 3600.0, lambda: None, first=T0)
    assert jobs.run_due(T0 + 3 * 3600.0) == ["hourly"]  # slept for hours: once, not 3 times
    assert jobs.run_due(T0 + 3 * 3600.0 + 1) == []
    assert jobs.run_due(T0 + 4 * 3600.0) == ["hourly"]


def test_a_new_period_applies_from_the_next_run() -> None:
    jobs = PeriodicJobs()
    jobs.add("rescan", float("inf"), lambda: None, first=float("inf"))  # off
    jobs.set_every("no such job", 1.0)  # ignored: `run --once` has no rescan job
    jobs.add("report", 5.0, lambda: None, first=T0)
    jobs.set_every("report", 1.0)
    assert jobs.run_due(T0) == ["report"]
    assert jobs.run_due(T0 + 1.0) == ["report"]
    jobs.set_every("rescan", 60.0)  # as SIGHUP does: an interval that was off stays off
    assert jobs.run_due(T0 + 10_000.0) == ["report"]


def test_a_failing_job_is_not_rescheduled_silently() -> None:
    """A job that raises propagates out of the pass (the daemon exits 1 and is restarted)."""

    def boom() -> None:
        raise OSError("disk full")

    jobs = PeriodicJobs()
    jobs.add("housekeeping", 3600.0, boom, first=T0)
    with pytest.raises(OSError):
        jobs.run_due(T0)


# ---- the daemon's own list --------------------------------------------------------------------


def make_config(tmp_path: Path, extra: str = "") -> Config:
    """A config whose watch folder does not exist: looking for it starts no observer."""
    config_file = tmp_path / "config.toml"
    config_file.write_text(f'{extra}[[watch]]\npath = "{tmp_path / "watch"}"\n')
    env = {"MAVI_API_KEY": API_KEY, "MAVI_API_BASE": "http://127.0.0.1:9/serve/api/v2",
           "MAVI_UPLOADER_STATE_DIR": str(tmp_path / "state")}  # fmt: skip
    return load_config(config_path=str(config_file), env=env)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal.open(tmp_path / "state")
    yield j
    j.close()


def test_the_daemons_jobs_come_due_on_its_timers(tmp_path: Path, journal: Journal) -> None:
    config = make_config(tmp_path, "rescan_interval_seconds = 600\n")
    daemon = Daemon(config, timers=Timers(report_every=5.0, watch_retry=10.0, prune_every=60.0))
    parts = daemon._assemble(journal)
    jobs = daemon._jobs(parts, T0)
    assert jobs.names == ["report", "watch folders", "event overflow", "housekeeping", "rescan"]
    assert jobs.run_due(T0) == ["report", "event overflow", "housekeeping"]
    assert jobs.run_due(T0 + 5.0) == ["report", "event overflow"]
    assert jobs.run_due(T0 + 10.0) == ["report", "watch folders", "event overflow"]
    assert jobs.run_due(T0 + 60.0) == ["report", "watch folders", "event overflow", "housekeeping"]
    rescanner = parts.rescanner
    requested_before = rescanner.busy
    assert "rescan" in jobs.run_due(T0 + 600.0)
    # Requested only: the walk runs on the rescan thread, not the one that pings the watchdog.
    assert (requested_before, rescanner.busy) == (False, True)
    (tmp_path / "watch").mkdir()
    assert jobs.run_due(T0 + 610.0) == ["report", "watch folders", "event overflow"]
    parts.watcher.stop()


def test_the_report_keeps_up_with_a_short_watchdog(
    tmp_path: Path, journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")  # WatchdogSec=2: ping every second
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    daemon = Daemon(make_config(tmp_path), timers=Timers(report_every=5.0))
    jobs = daemon._jobs(daemon._assemble(journal), T0)
    assert jobs.run_due(T0)[0] == "report"
    assert "report" in jobs.run_due(T0 + 1.0)


def test_a_once_run_only_reports_and_shows_progress(tmp_path: Path, journal: Journal) -> None:
    shown: list[object] = []
    daemon = Daemon(make_config(tmp_path), once=True, show_progress=shown.append)
    jobs = daemon._jobs(daemon._assemble(journal), T0)
    assert jobs.names == ["report", "progress bars"]
    assert jobs.run_due(T0) == ["report", "progress bars"] and shown == [[]]


def test_the_config_timers_reach_the_daemon_unless_a_test_passes_its_own(tmp_path: Path) -> None:
    config = make_config(tmp_path, "[timers]\nwatch_retry = 0.25\n")
    assert Daemon(config).timers.watch_retry == 0.25
    assert Daemon(config, timers=Timers()).timers.watch_retry == 10.0


def test_one_pass_ends_the_daemon_once_a_stop_was_asked_for(
    tmp_path: Path, journal: Journal
) -> None:
    daemon = Daemon(make_config(tmp_path))
    parts = daemon._assemble(journal)
    jobs = daemon._jobs(parts, T0)
    try:
        assert daemon._pass(parts, jobs, T0, None) is None
        daemon.request_stop()
        assert daemon._pass(parts, jobs, T0 + 1.0, None) == 0
        assert daemon.stop.is_set()
    finally:
        daemon.signals.close()
