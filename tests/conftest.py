"""Shared fixtures: a fake MAVI server, real folders and journals, the daemon as a subprocess."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from fakemavi import FakeMavi

API_KEY = "test-key-0123456789abcdef"
REPO = Path(__file__).resolve().parent.parent


def wait_for(
    condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll `condition` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_video(path: Path, size: int, seed: int = 0) -> Path:
    """A file of `size` pseudo-random bytes, distinct per (seed, name) so dedupe stays out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{seed}:{path.name}")
    path.write_bytes(rng.randbytes(size))
    return path


class Clock:
    """An injectable clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake() -> Iterator[FakeMavi]:
    with FakeMavi(API_KEY) as server:
        yield server


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """A test that leaves non-daemon threads running would hang CI: fail it instead."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
    assert not leaked, f"threads leaked: {leaked}"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Commands run in-process configure logging onto pytest's capture streams, which close
    after the test: put the previous configuration back so later tests do not write to them."""
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**config)
    root.handlers[:] = handlers
    root.setLevel(level)


class DaemonProcess:
    """`mavi-uploader` as a real subprocess with its own config, state dir and environment."""

    def __init__(self, tmp: Path, fake: FakeMavi, watch: Path, **settings: Any) -> None:
        self.state_dir = tmp / "state"
        self.config_path = tmp / "config.toml"
        self.log_path = tmp / "daemon.log"
        self.watch = watch
        self.proc: subprocess.Popen[bytes] | None = None
        options = {"settle_seconds": 0.5, "rate_limit_per_second": 50.0, **settings}
        lines = [f"{k} = {json.dumps(v)}" for k, v in options.items()]
        lines += ["[[watch]]", f"path = {json.dumps(str(watch))}"]
        self.config_path.write_text("\n".join(lines) + "\n")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MAVI_")},
            "MAVI_API_KEY": API_KEY,
            "MAVI_API_BASE": fake.api_base,
            "MAVI_UPLOADER_CONFIG": str(self.config_path),
            "MAVI_UPLOADER_STATE_DIR": str(self.state_dir),
        }

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "mavi_uploader", *args]

    def start(self, *args: str) -> DaemonProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            self.command("run", "--log-format", "json", *args),
            env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        return self

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args), env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def status(self) -> dict[str, Any]:
        result = self.cli("status", "--json")
        assert result.returncode == 0, result.stderr
        doc: dict[str, Any] = json.loads(result.stdout)
        return doc

    def files(self) -> list[dict[str, Any]]:
        result = self.cli("list", "--json", "--limit", "100000")
        assert result.returncode == 0, result.stderr
        docs: list[dict[str, Any]] = json.loads(result.stdout)
        return docs

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, timeout: float = 20.0) -> None:
        wait_for(lambda: '"event": "ready"' in self.log_text(), timeout, what="daemon ready")

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)

    def wait_exit(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def daemon_factory(tmp_path: Path, fake: FakeMavi) -> Iterator[Callable[..., DaemonProcess]]:
    made: list[DaemonProcess] = []

    def make(watch: Path | None = None, **settings: Any) -> DaemonProcess:
        folder = watch or tmp_path / "watch"
        folder.mkdir(parents=True, exist_ok=True)
        proc = DaemonProcess(tmp_path, fake, folder, **settings)
        made.append(proc)
        return proc

    yield make
    for proc in made:
        proc.close()
