"""Fleet rate slots: what sharing the limit through PostgreSQL costs, and the rate it keeps.

    .venv/bin/python bench/fleet_slots.py [--window 10] [--burst 2] [--repeat 3] [--quick]

A throwaway PostgreSQL cluster (tests/pgcluster.py: needs the server binaries) holds the
fleet's journal. A "host" is a process of its own (multiprocessing, spawn) that opens the
journal as its daemon would and takes slots through `RateLimiter(rate, slots=
shared_rate_slots(journal))`, on one endpoint shared by all hosts; the baseline is the
in-process limiter (`RateLimiter(rate)`) measured in the same run.

- rate 0 (unlimited): acquires/s for 1 and 3 hosts in --burst seconds, and the statements
  the book sent (target: none; unlimited never asks the database).
- rate 1e6/s (a limit that never binds: every acquire books a slot, none waits): acquires/s
  for 1 and 3 hosts, one thread each, against as many processes with the in-process limiter
  (which do not share it: the cost of sharing).
- round trips per acquire: one host, 500 acquires through a TCP proxy in this process that
  counts the client's turns (a turn = the client sends after the server spoke, i.e. a wait for
  an answer), after 10 not counted (connecting; psycopg prepares a statement at its 5th use,
  one more round trip once per connection); for comparison the same count for a statement
  through the journal's pool (a checkout pings the server). Target: 1 per acquire at rate
  1e6, 0 at rate 0.
- rate 1/s: 3 hosts with 2 threads each (and 1 host with 2 threads) take slots for --window
  seconds; achieved rate = (grants - 1) / (last - first), the most grants in any 1 s and the
  smallest gap, against the in-process limiter with 6 threads. Target: achieved <= 1/s and
  never 2 grants in a second. Statements per grant are counted by the book (less the one
  reservation of each acquire still waiting when the window closed).
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import sys
import threading
import time
from pathlib import Path
from typing import Any

import common
from common import TurnCounter, info, median, result, spread

sys.path.insert(0, str(common.TESTS))
import pgcluster
from mavi_uploader.journal import Fleet, open_journal, shared_rate_slots
from mavi_uploader.mavi.ratelimit import RateLimiter, Stopped

NEVER_BINDING = 1e6  # slots a microsecond apart: each acquire books one and none waits
ENDPOINT = "sign"
WARM_UP = 10  # calls before round trips are counted


# ---- one host (a process of its own) ---------------------------------------------------


def host_run(
    ready: Any, results: Any, url: str | None, host_id: str, rate: float, threads: int,
    seconds: float, endpoint: str,
) -> None:  # fmt: skip
    """Once every host is ready, take slots for `seconds` on `threads` threads; puts the grant
    times (time.time) and the statements the fleet's book sent. url None: in-process limiter."""
    journal = open_journal(Path("."), fleet=Fleet(url=url, host_id=host_id)) if url else None
    try:
        book = shared_rate_slots(journal) if journal is not None else None
        if book is not None:
            book.blocked_for(endpoint)  # connected before the clock starts
        before = book.round_trips if book is not None else 0
        stop = threading.Event()
        limiter = RateLimiter(rate, stop=stop, slots=book)
        grants: list[float] = []
        stopped: list[int] = []  # acquires cut short at the end (each booked one slot)
        lock = threading.Lock()
        go = threading.Event()

        def take() -> None:
            mine: list[float] = []
            go.wait()
            try:
                while not stop.is_set():
                    limiter.acquire(endpoint)
                    mine.append(time.time())
            except Stopped:
                stopped.append(1)
            with lock:
                grants.extend(mine)

        workers = [threading.Thread(target=take) for _ in range(threads)]
        for worker in workers:
            worker.start()
        ready.wait(120)
        end = time.time() + seconds
        go.set()
        stop.wait(seconds)
        stop.set()
        for worker in workers:
            worker.join()
        sent = (book.round_trips if book is not None else 0) - before
        kept = sorted(g for g in grants if g <= end)
        results.put({"grants": kept, "statements": sent, "stopped": len(stopped)})
    finally:
        if journal is not None:
            journal.close()


def hosts_run(
    url: str | None, hosts: int, rate: float, threads: int, seconds: float, endpoint: str
) -> list[dict[str, Any]]:
    """`hosts` processes taking slots together, from when all of them are ready."""
    ctx = multiprocessing.get_context("spawn")
    ready, results = ctx.Barrier(hosts + 1), ctx.Queue()
    procs = [
        ctx.Process(
            target=host_run,
            args=(ready, results, url, f"h{n}", rate, threads, seconds, endpoint),
        )
        for n in range(hosts)
    ]
    for proc in procs:
        proc.start()
    ready.wait(120)
    found = [results.get(timeout=seconds + 60) for _ in procs]
    for proc in procs:
        proc.join(30)
    return found


# ---- counting round trips ----------------------------------------------------------------


def round_trips(url: str, port: int, calls: int = 500) -> dict[str, float]:
    """Client turns per call: the book at rate 1e6 and at rate 0, a statement via the pool."""
    proxy = TurnCounter(port)
    proxied = url.replace(f":{port}/", f":{proxy.port}/")
    journal = open_journal(Path("."), fleet=Fleet(url=proxied, host_id="counted"))
    found: dict[str, float] = {}
    try:
        book = shared_rate_slots(journal)
        assert book is not None
        for name, rate in (("acquire", NEVER_BINDING), ("acquire at rate 0", 0.0)):
            limiter = RateLimiter(rate, slots=book)
            # Not counted: connecting, and psycopg preparing the statement at its 5th use.
            for _ in range(WARM_UP):
                limiter.acquire("counted")
            before = proxy.turns
            for _ in range(calls):
                limiter.acquire("counted")
            found[name] = (proxy.turns - before) / calls
        db = journal._db  # type: ignore[attr-defined] # the journal's pool, for comparison
        for _ in range(WARM_UP):
            db.rows("SELECT 1")
        before = proxy.turns
        for _ in range(calls):
            db.rows("SELECT 1")
        found["statement via the pool"] = (proxy.turns - before) / calls
    finally:
        journal.close()
    return found


# ---- figures -------------------------------------------------------------------------------


def per_second(runs: list[dict[str, Any]], seconds: float) -> float:
    return sum(len(r["grants"]) for r in runs) / seconds


def spacing(runs: list[dict[str, Any]]) -> tuple[float, int, float, float]:
    """(achieved rate, most grants in any 1 s, smallest gap, statements per grant)."""
    grants = sorted(g for r in runs for g in r["grants"])
    achieved = (len(grants) - 1) / (grants[-1] - grants[0]) if len(grants) > 1 else 0.0
    most = max(sum(t <= g < t + 1.0 for g in grants) for t in grants)
    gap = min((b - a for a, b in itertools.pairwise(grants)), default=float("inf"))
    booked = sum(max(0, r["statements"] - r["stopped"]) for r in runs)  # 0 in process
    statements = booked / max(1, len(grants))
    return achieved, most, gap, statements


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=10.0, help="seconds at 1/s")
    parser.add_argument("--burst", type=float, default=2.0, help="seconds of unbound acquires")
    parser.add_argument("--repeat", type=int, default=3, help="runs (median)")
    parser.add_argument("--quick", action="store_true", help="--window 5 --burst 1, once")
    args = parser.parse_args(argv)
    if args.quick:
        args.window, args.burst, args.repeat = 5.0, 1.0, 1
    common.header("fleet_slots", args)
    why = pgcluster.why_unavailable()
    if why is not None:
        sys.exit(f"cannot start PostgreSQL here: {why}")
    ok = True
    with pgcluster.running_cluster() as cluster:
        url = cluster.create_database("fleet")
        open_journal(Path("."), fleet=Fleet(url=url, host_id="setup")).close()  # the schema
        ok &= unbound(url, args)
        ok &= counted(url, cluster.port)
        ok &= one_per_second(url, args)
    return 0 if ok else 1


def unbound(url: str, args: argparse.Namespace) -> bool:
    """Acquires/s with the limit off (rate 0) and at a limit that never binds."""
    ok = True
    for rate, label in ((0.0, "rate 0 (unlimited)"), (NEVER_BINDING, "rate 1e6/s (never binds)")):
        local: dict[int, list[float]] = {1: [], 3: []}
        fleet: dict[int, list[float]] = {1: [], 3: []}
        statements: list[int] = []
        for run in range(args.repeat):
            for n in (1, 3):
                ep = f"{ENDPOINT}-{rate:g}-{n}-{run}"
                local[n].append(per_second(hosts_run(None, n, rate, 1, args.burst, ep), args.burst))
                runs = hosts_run(url, n, rate, 1, args.burst, ep)
                fleet[n].append(per_second(runs, args.burst))
                statements.append(sum(r["statements"] for r in runs))
            info(
                f"{label} run {run}: 1/3 processes with the in-process limiter"
                f" {local[1][-1]:.0f}/{local[3][-1]:.0f}, 1/3 fleet hosts"
                f" {fleet[1][-1]:.0f}/{fleet[3][-1]:.0f} acquires/s"
            )
        for n in (1, 3):
            figure, base = median(fleet[n]), median(local[n])
            text = (
                f"{label}, {n} host{'s' * (n > 1)}: {figure:.0f} acquires/s "
                f"{spread(fleet[n], '{:.0f}')}; in-process limiter, {n} process"
                f"{'es' * (n > 1)}: {base:.0f}/s; ratio {figure / base:.3f}"
            )
            if rate == 0:
                none = max(statements) == 0
                ok &= none
                result("fleet_slots", f"{text}; statements to the database {max(statements)}"
                       " (target 0)", none)  # fmt: skip
            else:
                result("fleet_slots", text)
    return ok


def counted(url: str, port: int) -> bool:
    found = round_trips(url, port)
    for name, value in found.items():
        info(f"{name}: {value:.2f} round trips")
    passed = found["acquire"] == 1.0 and found["acquire at rate 0"] == 0.0
    result(
        "fleet_slots",
        f"round trips per acquire: {found['acquire']:.2f} at rate 1e6/s,"
        f" {found['acquire at rate 0']:.2f} at rate 0 (target 1 and 0); a statement through"
        f" the journal's pool: {found['statement via the pool']:.2f}",
        passed,
    )
    return passed


def one_per_second(url: str, args: argparse.Namespace) -> bool:
    ok = True
    cases = [("in-process, 6 threads", None, 1, 6), ("fleet, 1 host x 2 threads", url, 1, 2),
             ("fleet, 3 hosts x 2 threads", url, 3, 2)]  # fmt: skip
    for label, where, hosts, threads in cases:
        figures = []
        for run in range(args.repeat):
            ep = f"{ENDPOINT}-1-{hosts}-{threads}-{where is None}-{run}"
            figures.append(spacing(hosts_run(where, hosts, 1.0, threads, args.window, ep)))
            achieved, most, gap, statements = figures[-1]
            info(
                f"{label} run {run}: {achieved:.4f}/s, most in 1 s {most}, smallest gap"
                f" {gap:.3f} s, statements/grant {statements:.2f}"
            )
        achieved = median([f[0] for f in figures])
        most = max(f[1] for f in figures)
        gap = min(f[2] for f in figures)
        statements = median([f[3] for f in figures])
        passed = achieved <= 1.0 and most <= 1
        ok &= passed
        result(
            "fleet_slots",
            f"rate 1/s, {label}: {achieved:.4f} calls/s achieved "
            f"{spread([f[0] for f in figures], '{:.4f}')} (limit 1, interval 1.1 s: 0.9091),"
            f" most in any 1 s {most}, smallest gap {gap:.3f} s,"
            f" statements/grant {statements:.2f}",
            passed,
        )
    return ok


if __name__ == "__main__":
    sys.exit(main())
