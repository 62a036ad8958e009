"""Fleet mode end to end: three daemon processes, one throwaway PostgreSQL, one MAVI.

The fake MAVI refuses, as MAVI does, any request to an endpoint sooner than a second after
the last one it accepted. The shared folder is bind-mounted at a different path on each host
(where mounts are permitted; else every host sees it at one path, said in the output); host
c has a folder of its own; host b has a copy of a shared file in a folder of its own. Mid-run
the host uploading the big file is killed with kill -9, and PostgreSQL is stopped and started
again. Then: every file uploaded whole, at most one extra upload for the kill, the work shared,
never more than 1 request/second per endpoint, the copy a duplicate.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import DaemonProcess, sha256_of, wait_for, write_video
from fakemavi import FakeMavi
from mavi_uploader.core.records import Event, FileRecord, State
from mavi_uploader.journal import Fleet, JournalError, open_for_reports
from pgcluster import Cluster

pytestmark = pytest.mark.timeout(240)

HOST_TIMEOUT = 3.0
SHARE = "drop"


@dataclass
class Host:
    name: str
    daemon: DaemonProcess
    share_mount: Path
    own: Path | None


def _bind(source: Path, target: Path, undo: contextlib.ExitStack) -> bool:
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True)
    if done.returncode != 0:
        return False
    undo.callback(subprocess.run, ["umount", "-l", str(target)], capture_output=True)
    return True


def _host(
    tmp: Path, fake: FakeMavi, url: str, name: str, share: Path, undo: contextlib.ExitStack
) -> tuple[Path, DaemonProcess]:
    home = tmp / name
    mount = home / "mnt" / SHARE
    if not _bind(share, mount, undo):
        print(f"bind mounts not permitted here: host {name} sees the share at {share}")
        mount = share
    daemon = DaemonProcess(
        home,
        fake,
        mount,
        journal_url=url,
        host_id=name,
        host_timeout_seconds=HOST_TIMEOUT,
        rate_limit_per_second=1.0,
        bandwidth_limit="2M",  # the big file takes seconds: time to kill its host mid-upload
        concurrency=2,
        timers={"confirm_first": 0.3, "retry_first": 0.3, "watch_retry": 0.5},
    )
    return mount, daemon


def _add_watches(host: Host) -> None:
    """The generated config has one [[watch]] (the share's mount): name it, add the own."""
    text = host.daemon.config_path.read_text() + f"share = {json.dumps(SHARE)}\n"
    if host.own is not None:
        text += f"[[watch]]\npath = {json.dumps(str(host.own))}\n"
    host.daemon.config_path.write_text(text)


@contextlib.contextmanager
def _fleet_of_three(tmp: Path, fake: FakeMavi, url: str) -> Iterator[dict[str, Host]]:
    share = tmp / "nas" / SHARE
    share.mkdir(parents=True)
    with contextlib.ExitStack() as undo:
        hosts: dict[str, Host] = {}
        for name in ("a", "b", "c"):
            mount, daemon = _host(tmp, fake, url, name, share, undo)
            own = tmp / name / "own" if name in ("b", "c") else None
            if own is not None:
                own.mkdir(parents=True)
            hosts[name] = Host(name, daemon, mount, own)
            _add_watches(hosts[name])
            undo.callback(daemon.close)
        yield hosts


def _rows(url: str) -> list[FileRecord]:
    """The whole fleet's rows as `list` on a host without the share sees them (`drop:name`
    for share files, `c:/path` for host c's own); [] while the database is away."""
    try:
        reader = open_for_reports(Path("/nonexistent"), Fleet(url=url, host_id="observer"))
    except JournalError:
        return []
    if reader is None:
        return []
    try:
        return reader.files(None, 100_000)
    except JournalError:
        return []
    finally:
        reader.close()


def _history(url: str, file_id: int) -> list[Event]:
    reader = open_for_reports(Path("/nonexistent"), Fleet(url=url, host_id="observer"))
    assert reader is not None
    try:
        return reader.history(file_id)
    finally:
        reader.close()


def _name(rec: FileRecord) -> str:
    return Path(rec.path.split(":", 1)[1]).name


def _waited(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def _uploading_big(url: str, size: int) -> FileRecord | None:
    for rec in _rows(url):
        if rec.state is State.UPLOADING and rec.size == size and rec.bytes_sent > 0:
            return rec
    return None


def test_three_hosts_share_a_drop_through_a_kill_and_a_database_restart(
    tmp_path: Path, pg_cluster: Cluster, pg_url: str, fake: FakeMavi
) -> None:
    big_size = 8 * 1024 * 1024
    with _fleet_of_three(tmp_path, fake, pg_url) as hosts:
        fake.enforce_limit_per_second = 1.0
        for host in hosts.values():
            host.daemon.start()
        for host in hosts.values():
            host.daemon.wait_ready(timeout=60)
        share = tmp_path / "nas" / SHARE
        shared = [write_video(share / f"clip{n:02}.mp4", 150_000 + n) for n in range(8)]
        big = write_video(share / "big.mov", big_size)
        own_c = [write_video(tmp_path / "c" / "own" / f"c{n}.mp4", 90_000 + n) for n in range(2)]
        copy_b = tmp_path / "b" / "own" / "copy-of-clip00.mp4"
        shutil.copyfile(shared[0], copy_b)
        originals = [*shared, big, *own_c]

        held = wait_for(lambda: _uploading_big(pg_url, big_size), 90, what="the big upload")
        victim = hosts[held.host_id or ""]
        assert victim.daemon.kill(signal.SIGKILL) == -signal.SIGKILL

        # PostgreSQL goes away for a while once a few more files are through.
        wait_for(lambda: sum(r.state is State.DONE for r in _rows(pg_url)) >= 4, 90, what="4")
        pg_cluster.stop()
        live = [h for h in hosts.values() if h is not victim]
        wait_for(
            lambda: all("journal unavailable" in h.daemon.log_text() for h in live),
            30,
            what="the live hosts to notice the outage",
        )
        pg_cluster.start()

        def big_done_by_another() -> bool:
            rows = [r for r in _rows(pg_url) if _name(r) == big.name]
            return bool(rows) and rows[0].state is State.DONE and rows[0].host_id != victim.name

        # The others take the dead host's upload over (once it has been silent, and they back
        # in touch, for host_timeout), reusing its asset...
        wait_for(big_done_by_another, 90, interval=0.2, what="the big file taken over")
        victim.daemon.start()  # ...and its service manager restarts it: it finishes its own
        wait_for(
            lambda: victim.daemon.log_text().count('"event": "ready"') == 2,
            60,
            what="the restarted host ready (its signal handlers in place)",
        )

        expected = {str(p.name) for p in originals} | {copy_b.name}

        def finished() -> bool:
            rows = [r for r in _rows(pg_url) if _name(r) in expected]
            settled = {State.DONE, State.DUPLICATE}
            return len(rows) == len(expected) and all(r.state in settled for r in rows)

        if not _waited(finished, 150):
            shown = [(r.path, r.state.value, r.host_id, r.last_error) for r in _rows(pg_url)]
            pytest.fail(f"not every file done or duplicate: {shown}")
        rows = {_name(r): r for r in _rows(pg_url)}
        for host in hosts.values():
            assert host.daemon.proc is not None and host.daemon.proc.poll() is None, host.name
            assert host.daemon.kill(signal.SIGTERM) == 0

    takeover = [e.reason for e in _history(pg_url, rows[big.name].id)]
    assert any(f"host {victim.name} went silent" in why for why in takeover), takeover
    # Every file uploaded whole, once (plus at most one extra for the kill).
    received = fake.received_sha256s()
    for path in originals:
        assert sha256_of(path) in received, path.name
    assert len(fake.completed) <= len(originals) + 1, [u.filename for u in fake.completed]
    # The copy on host b is a duplicate of the shared original, whoever uploaded that.
    assert rows[copy_b.name].state is State.DUPLICATE
    assert rows[copy_b.name].asset_id == rows[shared[0].name].asset_id
    # Host c's own files were uploaded by host c, and only by it.
    assert {rows[p.name].host_id for p in own_c} == {"c"}
    assert all(rows[p.name].share is None for p in own_c)
    assert all(rows[p.name].share == SHARE for p in shared)
    # The work was shared, and the account's limit held across the fleet.
    uploaders = {rows[p.name].host_id for p in shared}
    assert len(uploaders) >= 2, uploaders
    summary: dict[str, Any] = {e: fake.max_calls_in_window(e) for e in ("sign", "metadata")}
    assert summary == {"sign": 1, "metadata": 1}, summary
    assert fake.refused_over_limit == 0


def test_a_second_daemon_with_the_same_host_id_exits_3_and_a_bad_url_exits_2(
    tmp_path: Path, pg_url: str, fake: FakeMavi
) -> None:
    def daemon(name: str, url: str) -> DaemonProcess:
        (tmp_path / name / "watch").mkdir(parents=True)
        return DaemonProcess(
            tmp_path / name, fake, tmp_path / name / "watch", journal_url=url, host_id="bay-1"
        )

    first = daemon("first", pg_url).start()
    try:
        first.wait_ready()
        twin = daemon("twin", pg_url).start()  # its own state dir: only the host id clashes
        assert twin.wait_exit(60) == 3
        assert "another mavi-uploader daemon is running as host_id 'bay-1'" in twin.log_text()
        assert first.proc is not None and first.proc.poll() is None
    finally:
        assert first.kill(signal.SIGTERM) == 0
    wrong = daemon("wrong", pg_url.rsplit("/", 1)[0] + "/no_such_db").start()
    assert wrong.wait_exit(60) == 2
    assert "journal_url" in wrong.log_text() and "no_such_db" in wrong.log_text()
    assert "Traceback" not in wrong.log_text()
