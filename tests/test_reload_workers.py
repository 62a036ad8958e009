"""SIGHUP changing `concurrency`: one worker per slot, whatever the order of changes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import API_KEY, wait_for
from fakemavi import FakeMavi
from mavi_uploader.config.model import Config
from mavi_uploader.config.settings import load_config
from mavi_uploader.service.daemon import Daemon
from mavi_uploader.upload.worker import Worker


def config_with(tmp_path: Path, api_base: str, concurrency: int) -> Config:
    config_file = tmp_path / "config.toml"
    watch = tmp_path / "watch"
    watch.mkdir(exist_ok=True)
    config_file.write_text(f'concurrency = {concurrency}\n[[watch]]\npath = "{watch}"\n')
    env = {"MAVI_API_KEY": API_KEY, "MAVI_API_BASE": api_base,
           "MAVI_UPLOADER_STATE_DIR": str(tmp_path / "state")}  # fmt: skip
    return load_config(config_path=str(config_file), env=env)


def worker_threads() -> list[str]:
    return sorted(t.name.split(":")[-1] for t in threading.enumerate() if ":worker-" in t.name)


@pytest.fixture
def busy_third_worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """worker-3 stays busy (as with a long upload) until the event is set."""
    done = threading.Event()
    real_run_once = Worker.run_once

    def run_once(self: Worker) -> bool:
        if self.owner.endswith(":worker-3") and not done.is_set():
            done.wait()
            return True
        return real_run_once(self)

    monkeypatch.setattr(Worker, "run_once", run_once)
    yield done
    done.set()


def test_lowering_then_raising_concurrency_keeps_one_worker_per_slot(
    tmp_path: Path, fake: FakeMavi, busy_third_worker: threading.Event
) -> None:
    configs = {"next": config_with(tmp_path, fake.api_base, 3)}
    daemon = Daemon(configs["next"], reload_config=lambda: configs["next"])
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    try:
        wait_for(lambda: worker_threads() == ["worker-1", "worker-2", "worker-3"], what="3")

        configs["next"] = config_with(tmp_path, fake.api_base, 1)
        daemon.signals.hup_requested = True  # what SIGHUP sets
        wait_for(lambda: worker_threads() == ["worker-1", "worker-3"], what="worker-2 retired")

        configs["next"] = config_with(tmp_path, fake.api_base, 3)
        daemon.signals.hup_requested = True
        wait_for(lambda: worker_threads() == ["worker-1", "worker-2", "worker-3"], what="3 again")
        busy_third_worker.set()  # the long upload ends; worker-3 is wanted again and stays

        configs["next"] = config_with(tmp_path, fake.api_base, 2)
        daemon.signals.hup_requested = True
        wait_for(lambda: worker_threads() == ["worker-1", "worker-2"], what="worker-3 retired")
    finally:
        daemon.stop.set()
        runner.join(timeout=30)
