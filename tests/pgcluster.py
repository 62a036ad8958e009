"""A throwaway PostgreSQL cluster for tests, from the installed server binaries.

`initdb` and `pg_ctl` refuse to run as root, so as root they run as the `postgres` user
(setpriv); the cluster listens on a Unix socket in its own temporary folder and on a free
127.0.0.1 port, and is removed afterwards. Where the binaries are missing the PostgreSQL tests
skip with the reason; with MAVI_REQUIRE_POSTGRES=1 (set by .ci/run) they fail instead.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REQUIRE_ENV = "MAVI_REQUIRE_POSTGRES"


def server_bindir() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres, or None."""
    candidates = [os.environ.get("PG_BINDIR", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    found = shutil.which("initdb")
    if found:
        candidates.append(str(Path(found).resolve().parent))
    for folder in candidates:
        if folder and all((Path(folder) / tool).exists() for tool in ("initdb", "pg_ctl")):
            return Path(folder)
    return None


def why_unavailable() -> str | None:
    """None when a cluster can be started here, else the reason."""
    if server_bindir() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run the server as"
    try:
        import psycopg  # noqa: F401, PLC0415 - only to say why the tests skip
    except ImportError as exc:
        return f"psycopg is not installed ({exc}): pip install -e '.[postgres]'"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Cluster:
    """A running cluster: `url()` gives a URL for a database in it; `options` are more server
    settings (`-c name=value`, e.g. `-c log_statement=all` for bench/), after the defaults."""

    bindir: Path
    home: Path
    port: int
    options: tuple[str, ...] = ()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg  # noqa: PLC0415 - absent where the PostgreSQL tests skip

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.home / "data"), "-m", "fast", "-w", "stop")

    def start(self) -> None:
        log = self.home / "server.log"
        options = f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1 -c fsync=off"
        options = " ".join((options, *self.options))
        data = str(self.home / "data")
        self._run("pg_ctl", "-D", data, "-l", str(log), "-o", options, "-w", "start")

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        subprocess.run(_as_postgres(command), check=True, capture_output=True, timeout=120)


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *command]


@contextlib.contextmanager
def running_cluster(options: Sequence[str] = ()) -> Iterator[Cluster]:
    bindir = server_bindir()
    assert bindir is not None
    home = Path(tempfile.mkdtemp(prefix="mavi-pg-"))
    try:
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(home, entry.pw_uid, entry.pw_gid)
        cluster = Cluster(bindir, home, _free_port(), tuple(options))
        cluster._run(
            "initdb", "-D", str(home / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        cluster.start()
        try:
            yield cluster
        finally:
            with contextlib.suppress(subprocess.SubprocessError):
                cluster.stop()
    finally:
        shutil.rmtree(home, ignore_errors=True)
