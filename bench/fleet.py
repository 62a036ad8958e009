"""Fleet mode: 3 hosts x 1,000 files on one PostgreSQL journal, against 1 host on SQLite.

    .venv/bin/python bench/fleet.py [--files 1000] [--threads 2] [--e2e-files 1000]
        [--concurrency 4] [--limited-files 30] [--repeat 3] [--quick] [--only journal,e2e,limited]

A throwaway PostgreSQL cluster (tests/pgcluster.py: needs the server binaries) with
`fsync=on` (the tests run it with fsync off; `--pg-fsync off` for that) and
pg_stat_statements preloaded; SQLite keeps the daemon's settings (WAL, synchronous FULL) in
`--tmp`. Three parts, each against its baseline measured in the same run:

1. journal (in process): `--files` rows queued, then worker threads (`--threads` per host)
   carry each file through the journal calls `upload/worker.py` makes for a new file that
   uploads at once: claim, claim_content (dedupe), the `signed` move, the upload-started
   note, the last progress note, the move to confirming, the move to done: 7 calls, written
   with `core.outcomes` as the worker's Ledger does. Cases: 1 host on SQLite (baseline), 1
   host on PostgreSQL, 1 host with 3x the threads, 3 hosts (separate stores, own host_id, the
   rows in a share all of them mount). Files/s = claims/s = files / (first claim -> last
   done). Statements per file: counted by the store (`Database.round_trips`, what the store
   sends through `run`) and by pg_stat_statements (what the server executed, incl. BEGIN and
   COMMIT); round trips per file: one extra run of each PostgreSQL case through a TCP proxy
   (bench/common.py TurnCounter) that counts the client's turns, so it also sees the pool's
   connection check at each checkout (an empty query, which the server does not count as a
   statement), psycopg preparing a statement at its 5th use on a connection, and connecting.
   SQLite's statements are counted with `set_trace_callback` (in process: no round trips).
2. end to end, limit off (`rate_limit_per_second = 0`): `--e2e-files` small files (distinct
   contents, `--size` bytes) renamed at once into a folder watched by 3 daemons sharing it
   (`[[watch]] share = "drop"`, one journal on PostgreSQL, concurrency `--concurrency` each)
   and by 1 daemon on SQLite; also 1 daemon on PostgreSQL. One fake MAVI in its own process.
   Wall time from the rename to the last `done` (journal polled every 0.1 s), files/s, each
   host's share of the files; checks every file's sha256 reached the fake and counts extra
   uploads.
3. end to end, limit on: the same with `--limited-files` files, `rate_limit_per_second = 1`
   and the fake refusing requests above 1/s per endpoint (as MAVI does): 3 hosts against 1
   host on SQLite. Each file costs one sign and one metadata request, each 1.1 s apart (the
   limiter's 10 % margin), so 0.909 files/s is the best either can do. Reported: files/s from
   the rename to the last done, and steady (files between the first and the last accepted
   metadata request), the most requests in any 1 s per endpoint (received, and accepted),
   refusals (400 "Request has exceeded the limit.").
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common
from common import info, median, result, spread

sys.path.insert(0, str(common.TESTS))
import psycopg

import pgcluster
from mavi_uploader.core import outcomes
from mavi_uploader.core.outcomes import Outcome
from mavi_uploader.core.records import FileRecord, Observation
from mavi_uploader.core.states import State
from mavi_uploader.journal import ContentClaim, Fleet, JournalStore, open_journal

SHARE = "drop"
LEASE = 900.0  # the daemon's default lease
# Journal calls per file: claim, claim_content, 2 notes (upload started, progress), 3 moves
# (signed, confirming, done).
CALLS = {"claim": 1, "claim_content": 1, "update": 2, "transition": 3}
CEILING = 1.0 / 1.1  # files/s at 1 request/s per endpoint, with the limiter's 10 % margin
LIMITED_ENDPOINTS = ("sign", "metadata")


# ---- CPU -----------------------------------------------------------------------------------


def postgres_pids(cluster: pgcluster.Cluster) -> list[int]:
    """The cluster's server processes: the postmaster and its children (backends...)."""
    try:
        postmaster = int((cluster.home / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    pids = [postmaster]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == postmaster:
                    pids.append(int(entry))
    return pids


def cpu_of(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far of each group's live processes (pid -> seconds, per group)."""
    out: dict[str, float] = {}
    for group, members in pids.items():
        total = 0.0
        for pid in members:
            with contextlib.suppress(OSError):
                total += common.cpu_seconds(pid)
        out[group] = total
    return out


# ---- 1. journal level ------------------------------------------------------------------------


@dataclass
class Case:
    label: str
    kind: str  # sqlite | postgresql
    hosts: int
    threads: int  # per host


@dataclass
class JournalRun:
    seconds: float
    files: int
    per_host: dict[str, int]
    statements: int  # counted by the store (PostgreSQL) or the trace callback (SQLite)
    call_seconds: dict[str, float]  # time spent in each kind of journal call, all threads
    cpu: dict[str, float]  # CPU seconds during the run: this process, the database server
    turns: int | None = None  # client turns through the proxy (counted runs only)
    server: dict[str, int] = field(default_factory=dict)  # pg_stat_statements calls


def mount(host: str) -> str:
    return f"/bench/{host}/{SHARE}"


def fleet_of(url: str, host: str) -> Fleet:
    return Fleet(url=url, host_id=host, shares={SHARE: mount(host)}, host_timeout=30.0)


def open_store(case: Case, where: Path, url: str | None, host: str) -> JournalStore:
    if case.kind == "sqlite":
        return open_journal(where / "state")
    assert url is not None
    return open_journal(where / host, fleet=fleet_of(url, host))


def queue_rows(store: JournalStore, root: str, files: int, size: int) -> None:
    """`files` rows sighted and settled (queued), as the settle loop leaves them."""
    observations = [Observation(f"{root}/f{n:06d}.mp4", root, size, 1) for n in range(files)]
    with store.batch():
        for rec in store.sight(observations):
            store.transition(rec.id, State.QUEUED, "settled", expect=State.SETTLING)


class Timed:
    """Seconds spent in each kind of journal call (summed over threads)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def call(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - start
            with self._lock:
                self.seconds[name] = self.seconds.get(name, 0.0) + spent


def apply(store: JournalStore, rec: FileRecord, owner: str, outcome: Outcome) -> FileRecord:
    """What upload/ledger.py's Ledger.apply writes for a move (under the worker's lease)."""
    assert outcome.state is not None
    moved = store.transition(rec.id, outcome.state, outcome.reason, owner=owner, **outcome.fields)
    assert moved is not None, f"lost the claim of #{rec.id}"
    return moved


def carry_one(store: JournalStore, owner: str, timed: Timed) -> bool:
    """Claim a file and carry it to done through the worker's 7 journal calls; False when
    there was nothing left to claim."""
    with timed.call("claim"):
        rec = store.claim(owner, LEASE)
    if rec is None:
        return False
    sha = hashlib.sha256(f"bench {rec.path}".encode()).hexdigest()
    with timed.call("claim_content"):
        claim, _ = store.claim_content(rec.id, sha, owner, max_sends=3)
    assert claim is ContentClaim.CLAIMED, claim
    now = store.now()
    with timed.call("transition"):
        rec = apply(
            store, rec, owner, outcomes.signed(f"re_{rec.id:018d}", "http://x/", now + 3600)
        )
    size = rec.size or 0
    with timed.call("update"):
        ours = store.update(
            rec.id, owner=owner, upload_started_at=now, progress_at=now, bytes_sent=0
        )
        ours &= store.update(
            rec.id, owner=owner, lease_expires_at=now + LEASE, bytes_sent=size, progress_at=now
        )
    assert ours
    with timed.call("transition"):
        accepted = outcomes.accepted(
            rec, f"storage accepted {size} bytes", now=now, bytes_sent=size
        )
        rec = apply(store, rec, owner, accepted)
        apply(store, rec, owner, outcomes.finished(State.DONE, "MAVI: SUCCESS", owed=False))
    return True


class SqliteStatements:
    """Counts the statements SQLite runs on the store's connections (one per thread)."""

    def __init__(self, store: JournalStore) -> None:
        self.count = 0
        self._lock = threading.Lock()
        pool = store._db  # type: ignore[attr-defined] # the store's per-thread connections
        get = pool.get

        def counted_get() -> Any:
            conn = get()
            if not getattr(pool._local, "traced", False):
                conn.set_trace_callback(self._seen)
                pool._local.traced = True
            return conn

        pool.get = counted_get

    def _seen(self, _statement: str) -> None:
        with self._lock:
            self.count += 1


def store_statements(stores: list[JournalStore]) -> int:
    """Statements the PostgreSQL stores sent through Database.run (bench/ counts them)."""
    dbs: list[Any] = [getattr(s, "_db") for s in stores]  # noqa: B009 - private, for bench/
    return sum(int(db.round_trips) for db in dbs)


def server_statements(admin_url: str) -> dict[str, int]:
    """pg_stat_statements' calls in the bench's database, by (normalised) statement."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT query, calls FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE '%/* bench */%'"
        ).fetchall()
    found: Counter[str] = Counter()
    for query, calls in rows:
        found[" ".join(str(query).split())] += int(calls)
    return dict(found)


def reset_server_statements(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")


def open_stores(
    case: Case, args: argparse.Namespace, where: Path, url: str | None,
    proxy: common.TurnCounter | None,
) -> dict[str, JournalStore]:  # fmt: skip
    """The hosts' stores (by host id) on a journal holding `args.files` queued rows."""
    setup = open_store(case, where, url, "setup")
    root = mount("setup") if case.kind == "postgresql" else "/bench/own"
    queue_rows(setup, root, args.files, args.size)
    if case.kind == "sqlite":
        return {"h0": setup}
    setup.close()
    used = url if proxy is None else proxied(url, proxy)
    return {h: open_store(case, where, used, h) for h in (f"h{n}" for n in range(case.hosts))}


class Crew:
    """The worker threads of all hosts: warmed up, then started together."""

    def __init__(self, stores: dict[str, JournalStore], threads: int) -> None:
        self.timed = Timed()
        self.per_host: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._errors: list[BaseException] = []
        self._ready = threading.Barrier(len(stores) * threads + 1)
        self._go = threading.Barrier(len(stores) * threads + 1)
        self._threads = [
            threading.Thread(target=self._work, args=(store, host, f"{host}:{os.getpid()}:w{t}"))
            for host, store in stores.items()
            for t in range(threads)
        ]
        for thread in self._threads:
            thread.start()
        self._ready.wait()  # every thread warmed up

    def _work(self, store: JournalStore, host: str, owner: str) -> None:
        try:
            for _ in range(5):  # warm: a connection of its own in the pool, prepared reads
                store.get(0)
            self._ready.wait()
            self._go.wait()
            mine = 0
            while carry_one(store, owner, self.timed):
                mine += 1
            with self._lock:
                self.per_host[host] += mine
        except BaseException as exc:
            self._errors.append(exc)
            raise

    def run(self) -> float:
        """Start them all; seconds until the last one found nothing left to claim."""
        begin = time.perf_counter()
        self._go.wait()
        for thread in self._threads:
            thread.join()
        if self._errors:
            raise self._errors[0]
        return time.perf_counter() - begin


def journal_run(
    case: Case, args: argparse.Namespace, where: Path, url: str | None, *,
    proxy: common.TurnCounter | None = None, admin_url: str | None = None,
    cluster: pgcluster.Cluster | None = None,
) -> JournalRun:  # fmt: skip
    """One run of a case on a fresh journal (`url`: a fresh database; through `proxy` when
    counting round trips, pg_stat_statements read at `admin_url`)."""
    stores = open_stores(case, args, where, url, proxy)
    counter = SqliteStatements(stores["h0"]) if case.kind == "sqlite" else None

    def statements() -> int:
        return counter.count if counter is not None else store_statements([*stores.values()])

    crew = Crew(stores, case.threads)
    if admin_url is not None:
        reset_server_statements(admin_url)
    turns0, statements0 = (proxy.turns if proxy else 0), statements()
    groups = {"Python": [os.getpid()]}
    if cluster is not None and case.kind == "postgresql":
        groups["PostgreSQL"] = postgres_pids(cluster)
    cpu0 = cpu_of(groups)
    seconds = crew.run()
    cpu1 = cpu_of(groups)
    run = JournalRun(
        seconds,
        sum(crew.per_host.values()),
        dict(crew.per_host),
        statements() - statements0,
        dict(crew.timed.seconds),
        {k: cpu1[k] - cpu0[k] for k in cpu1},
    )
    if proxy is not None:
        run.turns = proxy.turns - turns0
    if admin_url is not None:
        run.server = server_statements(admin_url)
    for store in stores.values():
        store.close()
    if run.files != args.files:
        raise RuntimeError(f"{case.label}: {run.files} of {args.files} files carried")
    return run


def proxied(url: str | None, proxy: common.TurnCounter) -> str:
    assert url is not None
    host_port = url.split("@", 1)[1].split("/", 1)[0]
    return url.replace(f"@{host_port}/", f"@127.0.0.1:{proxy.port}/")


def journal_level(args: argparse.Namespace, work: Path, cluster: pgcluster.Cluster) -> bool:
    t = args.threads
    cases = [
        Case(f"SQLite, 1 host x {t} threads", "sqlite", 1, t),
        Case(f"PostgreSQL, 1 host x {t} threads", "postgresql", 1, t),
        Case(f"PostgreSQL, 1 host x {3 * t} threads", "postgresql", 1, 3 * t),
        Case(f"PostgreSQL, 3 hosts x {t} threads", "postgresql", 3, t),
    ]
    serial = iter(range(1_000_000))
    runs: dict[str, list[JournalRun]] = {c.label: [] for c in cases}
    for repeat in range(args.repeat):
        for case in cases:
            n = next(serial)
            url = cluster.create_database(f"j{n}") if case.kind == "postgresql" else None
            run = journal_run(case, args, work / f"journal-{n}", url, cluster=cluster)
            runs[case.label].append(run)
            info(
                f"journal run {repeat} {case.label}: {run.files / run.seconds:.0f} files/s"
                f" ({run.seconds:.2f} s), {run.statements / run.files:.2f} statements/file,"
                f" per host {dict(sorted(run.per_host.items()))}, CPU ms/file "
                + ", ".join(f"{k} {1000 * v / run.files:.2f}" for k, v in run.cpu.items())
            )
    # The round trips: one more run of each PostgreSQL case through the counting proxy.
    counted: dict[str, JournalRun] = {}
    for case in cases:
        if case.kind != "postgresql":
            continue
        n = next(serial)
        url = cluster.create_database(f"j{n}")
        admin = cluster.url(f"j{n}")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        proxy = common.TurnCounter(cluster.port)
        counted[case.label] = journal_run(
            case, args, work / f"journal-{n}", url, proxy=proxy, admin_url=admin
        )
    base_label = cases[0].label
    base = median([r.files / r.seconds for r in runs[base_label]])
    base_statements = median([r.statements / r.files for r in runs[base_label]])
    for case in cases:
        rates = [r.files / r.seconds for r in runs[case.label]]
        rate = median(rates)
        statements = median([r.statements / r.files for r in runs[case.label]])
        last = runs[case.label][-1]
        calls = ", ".join(
            f"{name} {1000 * spent / last.files / CALLS[name]:.2f}"
            for name, spent in sorted(last.call_seconds.items())
        )
        info(f"{case.label}: ms per call (mean, all threads): {calls}")
        cpu = {k: median([r.cpu[k] for r in runs[case.label]]) for k in last.cpu}
        cpu_text = ", ".join(f"{k} {1000 * v / last.files:.2f}" for k, v in cpu.items())
        text = f"journal {case.label}: {rate:.0f} files/s {spread(rates, '{:.0f}')}"
        if case.kind == "sqlite":
            text += f", {statements:.2f} statements/file incl. BEGIN/COMMIT (in process)"
            text += f"; CPU ms/file {cpu_text}"
            result("fleet", text + " (baseline)")
            continue
        found = counted[case.label]
        assert found.turns is not None
        server = sum(found.server.values())
        text += (
            f" (SQLite {base:.0f}/s, ratio {rate / base:.2f}); per file: {statements:.2f}"
            f" statements sent by the store, {server / found.files:.2f} executed by the server"
            f" (with BEGIN/COMMIT), {found.turns / found.files:.2f} round trips"
            f" (SQLite: {base_statements:.2f} statements, 0 round trips); CPU ms/file {cpu_text}"
        )
        result("fleet", text)
        if case.hosts > 1:
            shares = {h: f"{100 * c / last.files:.0f}%" for h, c in sorted(last.per_host.items())}
            info(f"{case.label}: each host's share of the files (last run): {shares}")
    for label, found in counted.items():
        info(f"{label}: statements the server executed per file (pg_stat_statements):")
        for query, executed in sorted(found.server.items(), key=lambda kv: -kv[1]):
            info(f"  {executed / found.files:5.2f}  {query[:110]}")
    return True


# ---- 2. and 3. end to end --------------------------------------------------------------------


@dataclass
class E2E:
    seconds: float  # rename -> all done
    done: int
    per_host: dict[str, int]
    missing: int  # files whose content never reached the fake
    uploads: int  # completed uploads at the fake
    calls: list[dict[str, Any]]
    refused: int
    states: dict[str, int]
    cpu: dict[str, float]  # CPU seconds from the rename to the last done, by process group
    server: dict[str, int]  # pg_stat_statements calls in that time (fleet runs)


class DoneCounter:
    """Reads the journal's done rows (and by whom) while the daemons run."""

    def __init__(self, url: str | None, state_dir: Path | None) -> None:
        self._url = url
        self._state_dir = state_dir
        self._pg: psycopg.Connection[Any] | None = None

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        sql = f"/* bench */ {sql}"  # not counted among the daemons' statements
        if self._url is not None:
            if self._pg is None:
                self._pg = psycopg.connect(self._url, autocommit=True)
            return list(self._pg.execute(sql).fetchall())
        assert self._state_dir is not None
        if not (self._state_dir / "journal.sqlite3").exists():
            return []
        conn = common.open_journal_ro(self._state_dir)
        try:
            return list(conn.execute(sql).fetchall())
        finally:
            conn.close()

    def done(self) -> int:
        rows = self._rows("SELECT COUNT(*) FROM files WHERE state = 'done'")
        return int(rows[0][0]) if rows else 0

    def per_host(self) -> dict[str, int]:
        if self._url is None:
            return {"sqlite": self.done()}
        rows = self._rows("SELECT host_id, COUNT(*) FROM files WHERE state = 'done' GROUP BY 1")
        return {str(h): int(n) for h, n in rows}

    def states(self) -> dict[str, int]:
        return {
            str(s): int(n) for s, n in self._rows("SELECT state, COUNT(*) FROM files GROUP BY 1")
        }

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()


def make_files(staging: Path, files: int, size: int, dirs: int) -> set[str]:
    """Distinct small files in `dirs` folders; their sha256s."""
    sums = set()
    for n in range(files):
        path = staging / f"cam{n % dirs:02d}" / f"clip{n:06d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        content = common.small_content(n, size)
        path.write_bytes(content)
        sums.add(hashlib.sha256(content).hexdigest())
    return sums


def e2e_run(
    args: argparse.Namespace, work: Path, cluster: pgcluster.Cluster, name: str, hosts: int,
    fleet: bool, files: int, limit: float,
) -> E2E:  # fmt: skip
    rundir = work / name
    share = rundir / "nas" / SHARE
    staging = rundir / "staging" / "batch"
    share.mkdir(parents=True)
    sums = make_files(staging, files, args.size, max(1, min(20, files // 50)))
    extra = ("--enforce-limit-per-second", f"{limit:g}") if limit else ()
    url = cluster.create_database(name) if fleet else None
    if url is not None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    with common.FakeServer(rundir, *extra) as fake:
        daemons = []
        for n in range(hosts):
            home = rundir / f"host{n}"
            home.mkdir()
            settings: dict[str, Any] = {
                "settle_seconds": 0.5,
                "concurrency": args.concurrency,
                "rate_limit_per_second": limit,
            }
            if url is not None:
                settings.update(journal_url=url, host_id=f"h{n}", host_timeout_seconds=30)
            daemon = common.Daemon(home, fake.api_base, share, **settings)
            daemon.env["PYTHONPATH"] = str(common.REPO / "daemon")  # this tree's package
            if url is not None:  # the generated config has one [[watch]]: the share's
                with open(daemon.config_path, "a", encoding="utf-8") as fh:
                    fh.write(f"share = {json.dumps(SHARE)}\n")
            daemons.append(daemon)
        counter = DoneCounter(url, None if fleet else daemons[0].state_dir)
        try:
            for daemon in daemons:
                daemon.start()
            for daemon in daemons:
                daemon.wait_event("ready", timeout=60)
            assert fake.proc is not None
            groups = {"daemons": [d.pid for d in daemons], "fake MAVI": [fake.proc.pid]}
            if fleet:
                groups["PostgreSQL"] = postgres_pids(cluster)
            if url is not None:
                reset_server_statements(url)
            cpu0 = cpu_of(groups)
            started = time.monotonic()
            os.rename(staging, share / "batch")
            common.poll_until(
                lambda: counter.done() >= files, args.timeout, interval=0.1, what="all done"
            )
            seconds = time.monotonic() - started
            if fleet:  # backends started meanwhile (each counted from its start)
                groups["PostgreSQL"] = postgres_pids(cluster)
            cpu1 = cpu_of(groups)
            server = server_statements(url) if url is not None else {}
            per_host, states = counter.per_host(), counter.states()
        finally:
            counter.close()
            for daemon in daemons:
                daemon.stop()
        dump = fake.stop()
    received = {u["sha256"] for u in dump.get("completed", [])}
    return E2E(
        seconds,
        sum(per_host.values()),
        per_host,
        len(sums - received),
        len(dump.get("completed", [])),
        list(dump.get("calls", [])),
        int(dump.get("refused_over_limit", 0)),
        states,
        {k: cpu1[k] - cpu0.get(k, 0.0) for k in cpu1},
        server,
    )


def most_in_a_second(times: list[float]) -> int:
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def limit_figures(run: E2E) -> tuple[float, dict[str, int]]:
    """Steady files/s (between the first and the last accepted metadata request: one per
    file), and the most requests in any second per endpoint (received, and accepted)."""
    ok_meta = sorted(
        c["time"] for c in run.calls if c["endpoint"] == "metadata" and c["status"] == 200
    )
    steady = (len(ok_meta) - 1) / (ok_meta[-1] - ok_meta[0]) if len(ok_meta) > 1 else 0.0
    most: dict[str, int] = {}
    for endpoint in LIMITED_ENDPOINTS:
        got = [c for c in run.calls if c["endpoint"] == endpoint]
        most[f"{endpoint} received"] = most_in_a_second([c["time"] for c in got])
        accepted = [c["time"] for c in got if c["status"] == 200]
        most[f"{endpoint} accepted"] = most_in_a_second(accepted)
    return steady, most


def describe(run: E2E, files: int) -> str:
    return (
        f"{run.seconds:.2f} s, {files / run.seconds:.1f} files/s, done {run.done}/{files},"
        f" per host {dict(sorted(run.per_host.items()))}, fake uploads {run.uploads},"
        f" missing {run.missing}, refused {run.refused}, CPU ms/file "
        + ", ".join(f"{k} {1000 * v / files:.1f}" for k, v in run.cpu.items())
    )


def end_to_end(args: argparse.Namespace, work: Path, cluster: pgcluster.Cluster) -> bool:
    """Limit off: 3 daemons on PostgreSQL and 1 on PostgreSQL against 1 on SQLite."""
    files = args.e2e_files
    cases = [("sqlite1", 1, False), ("pg1", 1, True), ("pg3", 3, True)]
    labels = {"sqlite1": "1 daemon on SQLite", "pg1": "1 daemon on PostgreSQL",
              "pg3": "3 daemons sharing the folder on PostgreSQL"}  # fmt: skip
    runs: dict[str, list[E2E]] = {c[0]: [] for c in cases}
    for repeat in range(args.repeat):
        for key, hosts, fleet in cases:
            run = e2e_run(args, work, cluster, f"e2e_{key}_{repeat}", hosts, fleet, files, 0.0)
            runs[key].append(run)
            info(f"e2e limit off run {repeat} {labels[key]}: {describe(run, files)}")
    ok = True
    base = median([files / r.seconds for r in runs["sqlite1"]])
    for key, _hosts, _fleet in cases:
        rates = [files / r.seconds for r in runs[key]]
        whole = all(r.done == files and r.missing == 0 for r in runs[key])
        ok &= whole
        extra = max(r.uploads - files for r in runs[key])
        shares = [
            "/".join(f"{100 * n / max(1, r.done):.0f}" for _, n in sorted(r.per_host.items()))
            for r in runs[key]
        ]
        text = (
            f"e2e limit off, {files} files, {labels[key]} (concurrency {args.concurrency} each):"
            f" all done in {median([r.seconds for r in runs[key]]):.2f} s"
            f" {spread([r.seconds for r in runs[key]], '{:.2f}')} = {median(rates):.1f} files/s"
        )
        if key != "sqlite1":
            text += f" (1 daemon on SQLite {base:.1f} files/s, ratio {median(rates) / base:.2f})"
        if key == "pg3":
            text += f"; each host's share in % {' '.join(shares)}"
        text += f"; every file whole: {whole}, extra uploads {extra}"
        cpu = {k: median([r.cpu[k] for r in runs[key]]) * 1000 / files for k in runs[key][0].cpu}
        text += "; CPU ms/file " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
        result("fleet", text, whole)
    for key, _hosts, fleet in cases:
        if not fleet:
            continue
        total = median([sum(r.server.values()) / files for r in runs[key]])
        info(f"{labels[key]}: {total:.1f} statements executed per file, the most run (last run):")
        last = runs[key][-1]
        for query, executed in sorted(last.server.items(), key=lambda kv: -kv[1])[:12]:
            info(f"  {executed / files:6.2f}  {query[:110]}")
    return ok


def limited(args: argparse.Namespace, work: Path, cluster: pgcluster.Cluster) -> bool:
    """Limit on: 3 daemons against 1 on SQLite, the fake enforcing 1 request/s."""
    files = args.limited_files
    cases = [("sqlite1", 1, False), ("pg3", 3, True)]
    labels = {"sqlite1": "1 daemon on SQLite", "pg3": "3 daemons on PostgreSQL"}
    runs: dict[str, list[E2E]] = {c[0]: [] for c in cases}
    for repeat in range(args.repeat):
        for key, hosts, fleet in cases:
            run = e2e_run(args, work, cluster, f"lim_{key}_{repeat}", hosts, fleet, files, 1.0)
            runs[key].append(run)
            steady, most = limit_figures(run)
            info(
                f"e2e at 1/s run {repeat} {labels[key]}: {describe(run, files)},"
                f" steady {steady:.3f} files/s, most in 1 s"
                f" {', '.join(f'{k} {v}' for k, v in most.items())}"
            )
    ok = True
    steady_base = median([limit_figures(r)[0] for r in runs["sqlite1"]])
    for key, _hosts, _fleet in cases:
        figures = [limit_figures(r) for r in runs[key]]
        overall = [files / r.seconds for r in runs[key]]
        rates = [f[0] for f in figures]
        most = {k: max(f[1][k] for f in figures) for k in figures[0][1]}
        refused = sum(r.refused for r in runs[key])
        whole = all(r.done == files and r.missing == 0 for r in runs[key])
        passed = (
            whole
            and median(rates) <= 1.0
            and max(most[f"{e} accepted"] for e in LIMITED_ENDPOINTS) <= 1
        )
        ok &= passed
        text = (
            f"e2e at 1 request/s, {files} files, {labels[key]}: {median(rates):.3f} files/s"
            f" steady {spread(rates)} (ceiling 1, best with the 10 % margin {CEILING:.3f};"
            f" ratio {median(rates) / CEILING:.3f})"
        )
        if key != "sqlite1":
            text += f" (1 daemon on SQLite {steady_base:.3f})"
        text += (
            f"; rename to last done {median(overall):.3f} files/s; most requests in any 1 s:"
            f" {', '.join(f'{k} {v}' for k, v in most.items())}; refused {refused} in"
            f" {len(runs[key])} runs; every file whole: {whole}"
        )
        if key == "pg3":
            shares = ["/".join(str(n) for _, n in sorted(r.per_host.items())) for r in runs[key]]
            text += f"; files per host {' '.join(shares)}"
        result("fleet", text, passed)
    return ok


# ---- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000, help="journal level: queued rows")
    parser.add_argument("--threads", type=int, default=2, help="journal level: threads per host")
    parser.add_argument("--e2e-files", type=int, default=1000, help="end to end, limit off")
    parser.add_argument("--limited-files", type=int, default=30, help="end to end at 1/s")
    parser.add_argument("--size", type=int, default=4096, help="bytes per file")
    parser.add_argument("--concurrency", type=int, default=4, help="workers per daemon")
    parser.add_argument("--repeat", type=int, default=3, help="runs (median)")
    parser.add_argument("--only", default="journal,e2e,limited", help="parts to run")
    parser.add_argument("--pg-fsync", choices=("on", "off"), default="on")
    parser.add_argument("--timeout", type=float, default=600, help="max seconds for all done")
    parser.add_argument("--tmp", default="/tmp")
    parser.add_argument("--quick", action="store_true", help="200/200/8 files, once")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.e2e_files, args.limited_files, args.repeat = 200, 200, 8, 1
    parts = set(args.only.split(","))
    common.header("fleet", args)
    why = pgcluster.why_unavailable()
    if why is not None:
        sys.exit(f"cannot start PostgreSQL here: {why}")
    options = [f"-c fsync={args.pg_fsync}", "-c shared_preload_libraries=pg_stat_statements"]
    ok = True
    work = common.work_dir("fleet", args.tmp)
    with common.cleanup(work, args.keep), pgcluster.running_cluster(options) as cluster:
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            fsync = conn.execute("SHOW fsync").fetchone()
        info(f"PostgreSQL {cluster.bindir.parent.name}, fsync {fsync[0] if fsync else '?'}")
        steps: list[tuple[str, Callable[[argparse.Namespace, Path, pgcluster.Cluster], bool]]] = [
            ("journal", journal_level), ("e2e", end_to_end), ("limited", limited)
        ]  # fmt: skip
        for name, step in steps:
            if name in parts:
                ok &= step(args, work, cluster)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
