"""Shared fixtures: a fake MAVI server, real folders and journals, the daemon as a subprocess."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis.configuration import set_hypothesis_home_dir

import browser
import pgcluster
from fakemavi import FakeMavi
from mavi_uploader.cli.views import bandwidth_document, file_documents, status_document
from mavi_uploader.config.settings import load_config
from mavi_uploader.journal import JournalStore, open_for_reports
from mavi_uploader.service.lock import probe

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


# Opens argv[1] with open()'s mode argv[2], says so, and keeps it open until stdin closes.
_HOLDER = (
    "import sys; f = open(sys.argv[1], sys.argv[2]); print('open', flush=True); sys.stdin.read()"
)


@contextlib.contextmanager
def held_open(path: Path, mode: str = "ab") -> Iterator[subprocess.Popen[str]]:
    """A real process holding `path` open in `mode` (as for open()) for the block: it has
    opened the file when the block starts and has exited when it ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path), mode],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline() == "open\n", f"holder of {path} failed: {proc.wait()}"
        yield proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
        proc.stdout.close()


def held_by(pid: int) -> str:
    """The writer probe's reason when it can name the process (the /proc scan can)."""
    comm = Path(f"/proc/{pid}/comm").read_text().strip()
    return f"held open for writing by pid {pid} ({comm})"


@pytest.fixture
def sigio_ignored() -> Iterator[None]:
    """SIGIO ignored, as the daemon has it: the writer probe may then take leases."""
    before = signal.signal(signal.SIGIO, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGIO, before)


class Clock:
    """An injectable clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


_HYPOTHESIS_HOME = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """Hypothesis writes a cache to ./.hypothesis as tests are collected: give it a private
    temp dir instead (tests never write to the working tree), removed after the session."""
    config.stash[_HYPOTHESIS_HOME] = tempfile.mkdtemp(prefix="mavi-uploader-hypothesis-")
    set_hypothesis_home_dir(config.stash[_HYPOTHESIS_HOME])


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(config.stash.get(_HYPOTHESIS_HOME, ""), ignore_errors=True)


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
def _restore_signal_dispositions() -> Iterator[None]:
    """An in-process daemon installs its handlers (and ignores SIGIO for the writer probe):
    put them back, so a later test in the same (xdist) process starts from the defaults."""
    signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGIO)
    saved = {sig: signal.getsignal(sig) for sig in signals}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


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


def open_reports(state_dir: Path) -> JournalStore | None:
    """The journal read-only, as `status` and `list` open it (None before there is one).

    The one place tests open a daemon's journal for reports: polls read it in this process
    instead of starting a CLI process per poll.
    """
    return open_for_reports(state_dir)


def read_status(state_dir: Path, config_path: Path | None = None) -> dict[str, Any]:
    """What `status --json` prints, read in this process (with `config_path`, its
    "bandwidth" too, which the command reads from the config)."""
    journal = open_reports(state_dir)
    bandwidth = None
    if config_path is not None:
        config = load_config(config_path=str(config_path), env={}, require_api_key=False)
        bandwidth = bandwidth_document(config)
    try:
        doc = status_document(state_dir, journal, probe(state_dir), bandwidth=bandwidth)
    finally:
        if journal is not None:
            journal.close()
    shaped: dict[str, Any] = json.loads(json.dumps(doc))  # exactly the JSON shapes
    return shaped


def read_files(state_dir: Path) -> list[dict[str, Any]]:
    """What `list --json --limit 100000` prints, read in this process."""
    journal = open_reports(state_dir)
    if journal is None:
        return []
    try:
        docs = file_documents(journal, journal.files(None, 100_000))
    finally:
        journal.close()
    shaped: list[dict[str, Any]] = json.loads(json.dumps(docs))
    return shaped


class DaemonProcess:
    """`mavi-uploader` as a real subprocess with its own config, state dir and environment.

    `timers` (seconds by name) go into the config's hidden [timers] table (config/timers.py).
    """

    def __init__(
        self,
        tmp: Path,
        fake: FakeMavi,
        watch: Path,
        *,
        timers: dict[str, float] | None = None,
        **settings: Any,
    ) -> None:
        self.state_dir = tmp / "state"
        self.config_path = tmp / "config.toml"
        self.log_path = tmp / "daemon.log"
        self.watch = watch
        self.proc: subprocess.Popen[bytes] | None = None
        options = {"settle_seconds": 0.5, "rate_limit_per_second": 50.0, **settings}
        lines = [f"{k} = {json.dumps(v)}" for k, v in options.items()]
        if timers:
            lines += ["[timers]", *(f"{k} = {json.dumps(v)}" for k, v in timers.items())]
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
        """`status --json`'s document, read in this process (cheap enough to poll)."""
        return read_status(self.state_dir, self.config_path)

    def files(self) -> list[dict[str, Any]]:
        """`list --json`'s documents, read in this process (cheap enough to poll)."""
        return read_files(self.state_dir)

    def cli_status(self) -> dict[str, Any]:
        """`status --json` run for real (a contract check, not a way to poll)."""
        result = self.cli("status", "--json")
        assert result.returncode == 0, result.stderr
        doc: dict[str, Any] = json.loads(result.stdout)
        return doc

    def cli_files(self) -> list[dict[str, Any]]:
        """`list --json` run for real (a contract check, not a way to poll)."""
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


# ---- Scenarios run in the background (test_e2e_faults.py, test_e2e_files.py) ----------------

Scenario = Callable[[Path, contextlib.ExitStack], Any]


class Background:
    """A test module's slow scenarios, all started on threads when its first test runs.

    The daemon's own timers (retry backoff, the 10 s re-check of missing watch folders, the
    30 s re-check of unreadable files) then overlap instead of adding up. A scenario is
    registered under the name of the test that checks it, without "test_"; that test calls
    the `scenario` fixture to get the scenario's return value (or what it raised). Only the
    scenarios of selected tests run. Each scenario gets its own folder and an ExitStack that
    is closed after every scenario has finished (daemons killed, fake servers stopped).
    """

    def __init__(self) -> None:
        self._bodies: dict[str, Scenario] = {}
        self._futures: dict[str, Future[Any]] = {}

    def __call__(self, body: Scenario) -> Scenario:
        self._bodies[body.__name__] = body
        return body

    @contextlib.contextmanager
    def running(
        self, wanted: Collection[str], tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[None]:
        names = [name for name in self._bodies if name in wanted]
        with contextlib.ExitStack() as cleanup:
            stacks = [cleanup.enter_context(contextlib.ExitStack()) for _ in names]
            with ThreadPoolExecutor(max(1, len(names)), thread_name_prefix="scenario") as pool:
                self._futures = {
                    name: pool.submit(self._bodies[name], tmp_path_factory.mktemp(name), stack)
                    for name, stack in zip(names, stacks, strict=True)
                }
                yield
        self._futures = {}

    def result(self, name: str, timeout: float = 110.0) -> Any:
        if name not in self._futures:
            pytest.fail(f"no background scenario named {name!r}")
        return self._futures[name].result(timeout=timeout)


@pytest.fixture(scope="module")
def background(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Background]:
    """Start the module's `BACKGROUND` scenarios for the tests selected in this module."""
    scenarios: Background = request.module.BACKGROUND
    wanted = {
        item.name.removeprefix("test_")
        for item in request.session.items
        if getattr(item, "module", None) is request.module
    }
    with scenarios.running(wanted, tmp_path_factory):
        yield scenarios


@pytest.fixture
def scenario(background: Background, request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Call it in the test body: waits for this test's background scenario, returns its value.

    Takes an optional `timeout` (default 110 s, under pytest's 120 s per test).
    """
    return functools.partial(background.result, request.node.name.removeprefix("test_"))


def start_fake(stack: contextlib.ExitStack, **options: Any) -> FakeMavi:
    """A fake MAVI server (stopped when `stack` closes)."""
    return stack.enter_context(FakeMavi(API_KEY, **options))


def new_daemon(
    stack: contextlib.ExitStack,
    tmp: Path,
    fake: FakeMavi,
    watch: Path | None = None,
    *,
    create_watch: bool = True,
    cls: type[DaemonProcess] = DaemonProcess,
    **settings: Any,
) -> DaemonProcess:
    """Like `daemon_factory` for background scenarios (killed when `stack` closes)."""
    folder = watch or tmp / "watch"
    if create_watch:
        folder.mkdir(parents=True, exist_ok=True)
    daemon = cls(tmp, fake, folder, **settings)
    stack.callback(daemon.close)
    return daemon


def exit_code_within(daemon: DaemonProcess, timeout: float) -> int:
    """The exit code of `run --once`; fails the test (with the log's tail) if it takes longer."""
    try:
        return daemon.wait_exit(timeout)
    except subprocess.TimeoutExpired:
        daemon.close()
        tail = "\n".join(daemon.log_text().splitlines()[-15:])
        pytest.fail(f"run --once still running after {timeout}s; log tail:\n{tail}")


def logged(daemon: DaemonProcess, **fields: Any) -> list[dict[str, Any]]:
    """The daemon's JSON log lines whose fields include `fields` (cheap to poll, no CLI)."""
    found = []
    for line in daemon.log_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and all(entry.get(k) == v for k, v in fields.items()):
            found.append(entry)
    return found


def logged_done(daemon: DaemonProcess) -> set[str]:
    """Display paths of the files the daemon has logged as done."""
    return {e["path"] for e in logged(daemon, event="transition", state="done")}


def shown(path: Path | bytes) -> str:
    """How reports show a path: undecodable bytes as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


@dataclass
class ScenarioRun:
    """What a background scenario leaves for its test to check (the reports `list --json` and
    `status --json` would print, read from the journal when the scenario ends)."""

    fake: FakeMavi
    daemon: DaemonProcess
    exit_code: int | None = None
    videos: list[Path] = field(default_factory=list)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # `list --json` by path
    status: dict[str, Any] = field(default_factory=dict)  # `status --json`
    seen: dict[str, Any] = field(default_factory=dict)  # observations made along the way

    def read_reports(self) -> ScenarioRun:
        self.rows = {row["path"]: row for row in self.daemon.files()}
        self.status = self.daemon.status()
        return self

    def assert_uploaded_whole(self, *videos: Path) -> None:
        """Each video is done and the asset its row names holds exactly its bytes."""
        for video in videos:
            row = self.rows[shown(video)]
            assert row["state"] == "done", row
            assert row["sha256"] == sha256_of(video)
            upload = self.fake.uploads[row["asset_id"]]
            assert (upload.sha256, upload.size) == (row["sha256"], video.stat().st_size), row
            assert self.fake.assets[row["asset_id"]].filename == video.name


def self_signed_certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1 (openssl), for servers that speak TLS."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: cannot make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="session")
def chromium() -> str:
    """Chromium for the status page's tests: skipped where missing, unless required (CI)."""
    why = browser.why_unavailable()
    if why is not None:
        if os.environ.get(browser.REQUIRE_ENV) == "1":
            pytest.fail(f"browser tests are mandatory here ({browser.REQUIRE_ENV}=1): {why}")
        pytest.skip(f"browser tests skipped: {why}")
    found = browser.find_chromium()
    assert found is not None
    return found


# ---- PostgreSQL: one throwaway cluster per test process, a fresh database per test -------


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[pgcluster.Cluster]:
    why = pgcluster.why_unavailable()
    if why is not None:
        if os.environ.get(pgcluster.REQUIRE_ENV) == "1":
            pytest.fail(f"PostgreSQL tests are mandatory here ({pgcluster.REQUIRE_ENV}=1): {why}")
        pytest.skip(f"PostgreSQL tests skipped: {why}")
    with pgcluster.running_cluster() as cluster:
        yield cluster


@pytest.fixture
def pg_url(pg_cluster: pgcluster.Cluster) -> str:
    """A URL to an empty database of its own (journals of one test never meet another's)."""
    return pg_cluster.create_database(f"t{next(_DATABASES)}")


_DATABASES = itertools.count(1)
