"""Helpers shared by the benchmarks (not a benchmark itself).

The fake MAVI server (tests/fakemavi.py) and the daemon run as subprocesses; this module
starts them, reads their /proc figures and the journal, makes test files and prints results.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import random
import resource
import select
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
TESTS = REPO / "tests"
PYTHON = sys.executable
API_KEY = "bench-key-0123456789abcdef"
CLK_TCK = os.sysconf("SC_CLK_TCK")
MiB = 1024 * 1024
GiB = 1024 * MiB
_UNITS = {"": 1, "K": 1024, "M": MiB, "G": GiB}


# ---- sizes, statistics, result lines ---------------------------------------------------


def parse_size(text: str) -> int:
    """'4G', '100M', '512K' or a byte count; binary units (1G = 2**30 bytes)."""
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = text[-1] if text and text[-1] in _UNITS else ""
    number = text[: -len(unit)] if unit else text
    return int(float(number) * _UNITS[unit])


def size_label(size: int) -> str:
    for unit in ("G", "M", "K"):
        if size >= _UNITS[unit] and size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return f"{size}B"


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float], fmt: str = "{:.3f}") -> str:
    """All repeats, for the log: '[0.41 0.42 0.45]'."""
    return "[" + " ".join(fmt.format(v) for v in values) + "]"


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def result(name: str, text: str, passed: bool | None = None) -> None:
    """The one line a benchmark is read by: `RESULT name text PASS|FAIL`."""
    tail = "" if passed is None else f" {verdict(passed)}"
    print(f"RESULT {name} {text}{tail}", flush=True)


def info(text: str) -> None:
    print(f"  {text}", flush=True)


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = meminfo_kb("MemTotal") / (1024 * 1024)
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def header(name: str, args: object) -> None:
    load = os.getloadavg()
    print(f"# {name} {dt.datetime.now().isoformat(timespec='seconds')}", flush=True)
    print(f"# machine: {machine()}", flush=True)
    print(f"# load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    print(f"# options: {vars(args)}", flush=True)


# ---- /proc ------------------------------------------------------------------------------


def meminfo_kb(key: str) -> int:
    with open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a live process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        stat = fh.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def status_kb(pid: int | str, key: str) -> int | None:
    """A `kB` field of /proc/PID/status (VmHWM, VmRSS...), None if the process is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ProcessLookupError):
        return None
    return None


def io_counters(pid: int | str = "self") -> dict[str, int]:
    """/proc/PID/io: rchar (bytes read by syscalls) and read_bytes (bytes from the disk)."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/io", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            out[key.strip()] = int(value)
    return out


def wait4(proc: subprocess.Popen[Any]) -> tuple[int, resource.struct_rusage]:
    """Reap `proc` with wait4: its exit code and its own rusage (not other children's)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage


def rusage_cpu(usage: resource.struct_rusage | Any) -> float:
    return float(usage.ru_utime + usage.ru_stime)


# ---- round trips ----------------------------------------------------------------------


class TurnCounter:
    """A TCP proxy to the server that counts the client's turns: each time the client sends
    after the server last spoke (or first), it starts a round trip."""

    def __init__(self, port: int) -> None:
        self._target = ("127.0.0.1", port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.turns = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self._listener.accept()
            server = socket.create_connection(self._target)
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        last = "server"
        with client, server:
            while True:
                readable, _, _ = select.select([client, server], [], [])
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client:
                        if last == "server":
                            with self._lock:
                                self.turns += 1
                        last = "client"
                        server.sendall(data)
                    else:
                        last = "server"
                        client.sendall(data)


# ---- files and disk -----------------------------------------------------------------------


def work_dir(name: str, base: str | None) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"mavi-bench-{name}-", dir=base))


def need_space(where: Path, size: int, margin: int = 2 * GiB) -> None:
    free = shutil.disk_usage(where).free
    if free < size + margin:
        sys.exit(f"not enough space in {where}: {free / GiB:.1f} GiB free, need {size / GiB:.1f}")


def write_big_file(path: Path, size: int, seed: int = 0) -> Path:
    """`size` bytes, every 8 MiB block distinct (no compression or dedupe can cheat)."""
    block = bytearray(random.Random(seed).randbytes(8 * MiB))  # noqa: S311 - test data
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        left, n = size, 0
        while left > 0:
            block[:16] = f"{seed:07d}:{n:08d}".encode()
            piece = memoryview(block)[: min(left, len(block))]
            fh.write(piece)
            left -= len(piece)
            n += 1
        fh.flush()
        os.fsync(fh.fileno())
    return path


def small_content(index: int, size: int) -> bytes:
    """Distinct content per index (so dedupe never folds two bench files together)."""
    head = f"mavi-bench file {index:09d}\n".encode()
    return (head * (size // len(head) + 1))[:size]


def evict(path: Path) -> None:
    """Drop one file's pages from the page cache (clean pages; the file was fsynced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def drop_all_caches(level: int = 1) -> bool:
    """echo LEVEL > /proc/sys/vm/drop_caches (root only). Affects the whole machine."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as fh:
            fh.write(f"{level}\n")
    except OSError:
        return False
    return True


def read_through(path: Path) -> None:
    """Read a file once so its pages are in the page cache."""
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(4 * MiB)
        while fh.readinto(buf):
            pass


# ---- the fake MAVI server and the daemon as subprocesses ----------------------------------


class FakeServer:
    """tests/fakemavi.py in its own process (`--no-store-bodies`), records dumped on stop."""

    def __init__(self, workdir: Path, *extra: str) -> None:
        self.dump_path = workdir / "fakemavi-dump.json"
        self._err_path = workdir / "fakemavi.err"
        self._extra = extra
        self.proc: subprocess.Popen[str] | None = None
        self.api_base = ""
        self.dump: dict[str, Any] = {}

    def __enter__(self) -> FakeServer:
        cmd = [PYTHON, str(TESTS / "fakemavi.py"), "--port", "0", "--key", API_KEY]
        cmd += ["--no-store-bodies", "--dump", str(self.dump_path), *self._extra]
        with open(self._err_path, "w", encoding="utf-8") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"fake server did not start: {self._err_path.read_text()}")
        self.api_base = json.loads(line)["api_base"]
        return self

    def stop(self) -> dict[str, Any]:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        if self.dump_path.exists():
            self.dump = json.loads(self.dump_path.read_text())
        return self.dump

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def daemon_command() -> list[str]:
    script = Path(PYTHON).parent / "mavi-uploader"
    return [str(script)] if script.exists() else [PYTHON, "-m", "mavi_uploader"]


class Daemon:
    """`mavi-uploader run` with its own config file, state dir and JSON log."""

    def __init__(self, workdir: Path, api_base: str, watch: Path, **settings: Any) -> None:
        self.workdir = workdir
        self.state_dir = workdir / "state"
        self.config_path = workdir / "config.toml"
        self.log_path = workdir / "daemon.log"
        self.watch = watch
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0  # time.time() just before the process was started
        lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
        lines += ["[[watch]]", f"path = {json.dumps(str(watch))}"]
        self.config_path.write_text("\n".join(lines) + "\n")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MAVI_")},
            "MAVI_API_KEY": API_KEY,
            "MAVI_API_BASE": api_base,
            "MAVI_UPLOADER_CONFIG": str(self.config_path),
            "MAVI_UPLOADER_STATE_DIR": str(self.state_dir),
        }
        self._log_offset = 0
        self._log_file: IO[bytes] | None = None

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        self._log_offset = 0
        with open(self.log_path, "wb") as log:
            self.started_at = time.time()
            self.proc = subprocess.Popen(
                [*daemon_command(), "run", "--log-format", "json", *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self.proc

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def new_log_entries(self) -> list[dict[str, Any]]:
        """JSON log lines written since the last call (complete lines only)."""
        if not self.log_path.exists():
            return []
        with open(self.log_path, "rb") as fh:
            fh.seek(self._log_offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1
        self._log_offset += end
        out = []
        for line in data[:end].splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    out.append(entry)
        return out

    def wait_event(self, event: str, timeout: float, interval: float = 0.02) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for entry in self.new_log_entries():
                if entry.get("event") == event:
                    return entry
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited ({self.proc.returncode}) before {event!r}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {event!r} log line after {timeout}s; see {self.log_path}")
            time.sleep(interval)

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def journal(self) -> sqlite3.Connection:
        return open_journal_ro(self.state_dir)


def open_journal_ro(state_dir: Path) -> sqlite3.Connection:
    """A read-only connection to the daemon's journal (safe while the daemon writes)."""
    uri = f"{(state_dir / 'journal.sqlite3').absolute().as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def scalar(conn: sqlite3.Connection, sql: str, *args: Any) -> int:
    row = conn.execute(sql, args).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def iso_to_epoch(stamp: str) -> float:
    """structlog's ISO timestamp ('2025-01-01T00:00:00.123456Z') as epoch seconds."""
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def poll_until(
    condition: Callable[[], bool], timeout: float, interval: float = 0.05, what: str = ""
) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            print(f"  timed out after {timeout}s waiting for {what}", flush=True)
            return False
        time.sleep(interval)
    return True


@contextlib.contextmanager
def cleanup(path: Path, keep: bool) -> Iterator[Path]:
    try:
        yield path
    finally:
        if keep:
            print(f"# kept {path}", flush=True)
        else:
            shutil.rmtree(path, ignore_errors=True)
