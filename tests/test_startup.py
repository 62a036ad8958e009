"""The report commands start fast: `--version`, `status`, `list` and `history` do not import
what only the daemon uses (requests, watchdog, rich, structlog, psycopg, the upload and watch
layers). Each command runs as `python -m mavi_uploader` in a fresh interpreter, which writes
the names in sys.modules at exit; bench/startup.py measures what this buys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_video
from mavi_uploader.core.records import Observation
from mavi_uploader.journal.sqlite.store import Journal

# Top-level packages (and our own daemon-side modules) a report command must not import.
DAEMON_ONLY = (
    "requests",
    "urllib3",
    "watchdog",
    "rich",
    "structlog",
    "psycopg",
    "psycopg_pool",
    "mavi_uploader.mavi",
    "mavi_uploader.watch",
    "mavi_uploader.upload",
    "mavi_uploader.service.daemon",
)

# Runs a module as `python -m` does and writes sys.modules at exit (after SystemExit too).
PROBE = """
import atexit, json, runpy, sys
out, module = sys.argv[1], sys.argv[2]
def dump():
    with open(out, "w") as fh:
        json.dump(sorted(sys.modules), fh)
atexit.register(dump)
sys.argv = ["mavi-uploader", *sys.argv[3:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A config, and a journal holding one file: the reports read real rows."""
    watch = tmp_path / "watch"
    watch.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(f'[[watch]]\npath = "{watch}"\n')
    state = tmp_path / "state"
    video = write_video(watch / "clip.mp4", 1000)
    journal = Journal.open(state)
    journal.sight([Observation(str(video), str(watch), 1000, 1)])
    journal.close()
    names = {"MAVI_UPLOADER_CONFIG": str(config), "MAVI_UPLOADER_STATE_DIR": str(state)}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAVI_")}
    return {**clean, **names}


def probe(tmp_path: Path, env: dict[str, str], module: str, *args: str) -> tuple[str, set[str]]:
    """Run `module` with `args`; its stdout and the modules it had imported at exit."""
    out = tmp_path / "modules.json"
    out.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), module, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, set(json.loads(out.read_text()))


def daemon_only(modules: set[str]) -> list[str]:
    return sorted(m for m in modules for p in DAEMON_ONLY if m == p or m.startswith(p + "."))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--version"], "mavi-uploader "),
        (["status", "--json"], '"settling": 1'),
        (["status"], "settling"),
        (["list", "--json"], "clip.mp4"),
        (["list"], "clip.mp4"),
        (["history", "1", "--json"], "clip.mp4"),
        (["history", "1"], "clip.mp4"),
    ],
)
def test_report_commands_import_nothing_the_daemon_needs(
    tmp_path: Path, env: dict[str, str], args: list[str], expected: str
) -> None:
    out, modules = probe(tmp_path, env, "mavi_uploader", *args)
    assert expected in out
    assert "mavi_uploader.cli.main" in modules  # the probe saw the run: not an empty list
    if args != ["--version"]:
        assert "mavi_uploader.journal.sqlite.store" in modules  # it did read the journal
    assert daemon_only(modules) == []


def test_the_probe_sees_the_daemons_imports(tmp_path: Path, env: dict[str, str]) -> None:
    """The control: what `run` loads is what the test above looks for, so a probe that
    stopped seeing imports (or a list naming packages nobody imports) fails here."""
    _out, modules = probe(tmp_path, env, "mavi_uploader.cli.run")
    top = {m.split(".")[0] for m in daemon_only(modules)}
    assert {"requests", "urllib3", "watchdog", "rich", "structlog"} <= top
    assert "mavi_uploader.service.daemon" in modules
