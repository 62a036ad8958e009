"""Every `[timers]` setting reaches the part that uses it.

In process: a config sets every timer to a value of its own, the daemon assembles its parts
(no thread is started: spawning is recorded instead), and one table says where each value must
be found. Deleting any pass-through in service/daemon.py makes its row fail.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conftest import API_KEY
from mavi_uploader.config.model import Config
from mavi_uploader.config.settings import load_config
from mavi_uploader.config.timers import TIMER_NAMES
from mavi_uploader.journal import make_state_dir, open_journal
from mavi_uploader.service import handoffs, housekeeping
from mavi_uploader.service.daemon import Daemon
from mavi_uploader.service.handoffs import LEASE_MARGIN

# cli/ reads it from the config itself (`enqueue --wait`): not the daemon's.
NOT_THE_DAEMONS = {"wait_poll"}


def jobs_every(jobs: Any, name: str) -> float:
    (every,) = [job.every for job in jobs._jobs if job.name == name]
    return float(every)


# (timer, where the daemon's parts hold it): `w` is what wired() gathered.
WHERE: list[tuple[str, Callable[[Any], float]]] = [
    # service/
    ("tick", lambda w: w.naps["daemon"]),
    ("once_poll", lambda w: w.naps["once"]),
    ("report_every", lambda w: jobs_every(w.jobs, "report")),
    ("stale_beat", lambda w: w.daemon._loops._beats["settle"][1]),
    ("rescan_stall", lambda w: w.daemon._loops._beats["rescan"][1]),
    ("watch_retry", lambda w: jobs_every(w.jobs, "watch folders")),
    ("prune_every", lambda w: jobs_every(w.jobs, "housekeeping")),
    ("stop_grace", lambda w: w.joined_for),
    ("guard_pause", lambda w: w.daemon._loops._guard_pause),
    ("once_unreachable", lambda w: w.once_end.unreachable),
    # watch/
    ("unreadable_retry", lambda w: w.parts.settler._unreadable_retry),
    ("rescan_retry", lambda w: w.parts.rescanner._retry_seconds),
    ("closed_quiet", lambda w: w.parts.watcher._finished.quiet),
    # upload/
    ("retry_first", lambda w: w.worker._backoffs.upload.base),
    ("confirm_first", lambda w: w.worker._backoffs.confirm.base),
    ("first_check", lambda w: w.worker._first_checks.delay(1)),  # until one is learned
    ("pause_probe_every", lambda w: w.parts.gate._probe_interval),
    ("lease", lambda w: w.worker._lease_seconds),
    ("progress_every", lambda w: w.worker._pacing.progress_every),
    ("sweep_grace", lambda w: w.swept_with),
    # mavi/
    ("handoff_first", lambda w: w.runner._backoff.base),
    ("handoff_poll", lambda w: w.runner_nap),
    ("webhook_timeout", lambda w: (w.runner._lease() - LEASE_MARGIN) / 2),  # two waits + margin
    ("connect_timeout", lambda w: w.parts.client._timeout[0]),
    ("read_timeout", lambda w: w.parts.client._timeout[1]),
    ("timetable_shift", lambda w: w.parts.bandwidth._now.shift),
]


def distinct_timers() -> dict[str, float]:
    """A value of its own for every timer (the lease must outlast progress_every)."""
    return {name: 900.25 if name == "lease" else n + 1.25 for n, name in enumerate(TIMER_NAMES)}


def config_with(tmp_path: Path, timers: dict[str, float]) -> Config:
    (tmp_path / "watch").mkdir()
    table = "".join(f"{name} = {value}\n" for name, value in timers.items())
    config_file = tmp_path / "config.toml"
    config_file.write_text(f'[[watch]]\npath = "{tmp_path / "watch"}"\n[timers]\n{table}')
    env = {
        "MAVI_API_KEY": API_KEY,
        "MAVI_API_BASE": "http://127.0.0.1:9/serve/api/v2",
        "MAVI_UPLOADER_STATE_DIR": str(tmp_path / "state"),
    }
    return load_config(config_path=str(config_file), env=env)


class OneTurnSettler:
    """Lets the settle loop turn once (it beats), then stops the daemon."""

    settle_seconds = 1.0

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon

    def tick(self) -> bool:
        self._daemon.stop.set()
        return False


def supervise_one_pass(daemon: Daemon, parts: Any, monkeypatch: pytest.MonkeyPatch) -> float:
    """Run the supervisor loop for one pass (it is told to stop); the nap it took."""
    naps: list[float] = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        daemon.request_stop()

    monkeypatch.setattr(daemon.signals, "nap", nap)
    daemon._supervise(parts)
    return naps[0]


def wired(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: Config) -> SimpleNamespace:
    """A daemon and a `run --once` daemon assembled from `config`, and what they did with it."""
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)  # report_every is not cut to half of it
    make_state_dir(config.state_dir)
    journal = open_journal(config.state_dir)
    w = SimpleNamespace()
    try:
        once = Daemon(config, once=True)
        once_parts = once._assemble(journal)
        w.once_end = once._once_end(once_parts)
        w.naps = {"once": supervise_one_pass(once, once_parts, monkeypatch)}

        w.daemon = daemon = Daemon(config)
        monkeypatch.setattr(daemon._loops, "spawn", lambda name, body: None)  # no threads
        w.parts = parts = daemon._assemble(journal)
        w.jobs = daemon._jobs(parts, 0.0)
        daemon._staff_workers(parts)
        w.worker = daemon._workers[0]
        daemon._report(parts)  # beats the rescan
        daemon._settle_loop(OneTurnSettler(daemon))  # type: ignore[arg-type]
        swept: list[float] = []
        monkeypatch.setattr(housekeeping, "tidy", lambda _j, _c, grace: swept.append(grace))
        daemon._tidy(journal)
        (w.swept_with,) = swept
        w.naps["daemon"] = supervise_one_pass(daemon, parts, monkeypatch)
        parts.watcher.stop()
        # The daemon's runners, as `_run_locked` builds them; one pass and its nap.
        webhooks = handoffs.runners(journal, lambda: config.handoff, daemon.stop, daemon.timers)[1]
        w.runner = webhooks
        naps: list[float] = []

        def nap(seconds: float) -> bool:
            naps.append(seconds)
            return True

        monkeypatch.setattr(daemon.stop, "wait", nap)
        monkeypatch.setattr(daemon.stop, "is_set", lambda: bool(naps))
        webhooks.run()
        (w.runner_nap,) = naps
    finally:
        journal.close()
    # A whole run, its body skipped: how long it waits for its threads.
    daemon = Daemon(config)
    joins: list[float] = []
    monkeypatch.setattr(daemon, "_run_locked", lambda journal: 0)
    monkeypatch.setattr(daemon._loops, "join", joins.append)
    assert daemon.run() == 0
    (w.joined_for,) = joins
    return w


def test_the_table_names_every_timer() -> None:
    assert {name for name, _ in WHERE} | NOT_THE_DAEMONS == set(TIMER_NAMES)
    assert len(WHERE) == len({name for name, _ in WHERE})


def test_every_timer_reaches_the_part_that_uses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wanted = distinct_timers()
    assert len(set(wanted.values())) == len(wanted)
    config = config_with(tmp_path, wanted)
    assert dataclasses.asdict(config.timers) == wanted
    w = wired(tmp_path, monkeypatch, config)
    found = {name: where(w) for name, where in WHERE}
    assert found == {name: wanted[name] for name, _ in WHERE}
