"""Latency: a small file that stops changing is uploaded within settle_seconds + 1 s.

    .venv/bin/python bench/latency.py [--settle 2 --size 1M --files 10] [--repeat 3] [--quick]

`mavi-uploader run` (settle_seconds 2, otherwise the defaults: rate limit 1/s per endpoint,
concurrency 2) watches a folder; the fake MAVI server runs in this process so its record of
each completed upload carries a time.monotonic() stamp comparable with ours. One at a time,
a 1 MB file is written into the folder (after a random 0.2-1.2 s pause, so the writes fall
at random phases of the daemon's settle tick); measured from its close() to (a) the fake
server recording the completed upload and (b) the journal's `done` event (its `at`,
time.time(), against time.time() at close). Target: (a) <= settle_seconds + 1 s, for the
median and the max of the --files uploads (each the median over --repeat daemon runs).
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import sys
import time
from pathlib import Path

import common
from common import info, median, result, scalar, spread

sys.path.insert(0, str(common.TESTS))
from fakemavi import FakeMavi

DONE_AT = (
    "SELECT MAX(e.at) FROM events e JOIN files f ON f.id = e.file_id"
    " WHERE f.path = ? AND e.to_state = 'done'"
)


def one_file(
    fake: FakeMavi, conn: sqlite3.Connection, path: Path, data: bytes
) -> tuple[float, float]:
    """Write one file; (close -> upload completed, close -> done event) in seconds."""
    before = len(fake.completed)
    with open(path, "wb") as fh:
        fh.write(data)
    closed_mono, closed_wall = time.monotonic(), time.time()
    common.poll_until(lambda: len(fake.completed) > before, 60, interval=0.005, what="upload")
    record = fake.completed[-1]
    assert record.filename == path.name and record.size == len(data), record
    blob = os.fsencode(str(path))
    common.poll_until(lambda: scalar(conn, DONE_AT, blob) > 0, 60, interval=0.01, what="done")
    return record.completed_at - closed_mono, scalar_float(conn, DONE_AT, blob) - closed_wall


def scalar_float(conn: sqlite3.Connection, sql: str, *args: object) -> float:
    return float(conn.execute(sql, args).fetchone()[0])


def one_run(args: argparse.Namespace, work: Path, run: int) -> tuple[list[float], list[float]]:
    rundir = work / f"run-{run}"
    watch = rundir / "watch"
    watch.mkdir(parents=True)
    uploaded, done = [], []
    pause = random.Random(run)  # noqa: S311 - random phases of the daemon's settle tick
    with FakeMavi(common.API_KEY, store_bodies=False) as fake:
        daemon = common.Daemon(rundir, fake.api_base, watch, settle_seconds=args.settle)
        daemon.start()
        try:
            daemon.wait_event("ready", timeout=30)
            conn = daemon.journal()
            for n in range(args.files):
                name = f"clip{run:02d}-{n:03d}.mp4"
                data = common.small_content(run * 1000 + n, args.size)
                up, dn = one_file(fake, conn, watch / name, data)
                uploaded.append(up)
                done.append(dn)
                time.sleep(0.2 + pause.random())
            conn.close()
        finally:
            daemon.stop()
    info(f"run {run}: close->uploaded s {spread(uploaded, '{:.2f}')}")
    info(f"run {run}: close->done     s {spread(done, '{:.2f}')}")
    return uploaded, done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settle", type=float, default=2.0, help="settle_seconds")
    parser.add_argument("--size", type=common.parse_size, default=common.MiB, help="file size")
    parser.add_argument("--files", type=int, default=10, help="files per run")
    parser.add_argument("--repeat", type=int, default=3, help="daemon runs (median)")
    parser.add_argument("--tmp", default="/tmp")
    parser.add_argument("--quick", action="store_true", help="one run of 5 files")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.repeat = 5, 1
    common.header("latency", args)
    work = common.work_dir("latency", args.tmp)
    with common.cleanup(work, args.keep):
        runs = [one_run(args, work, n) for n in range(args.repeat)]
    target = args.settle + 1.0
    up_med = median([median(u) for u, _ in runs])
    up_max = median([max(u) for u, _ in runs])
    done_med = median([median(d) for _, d in runs])
    done_max = median([max(d) for _, d in runs])
    worst = max(max(u) for u, _ in runs)
    ok = up_max <= target
    result(
        f"latency {common.size_label(args.size)} settle {args.settle:g} s:",
        f"close -> uploaded median {up_med:.2f} s, max {up_max:.2f} s (worst of all "
        f"{worst:.2f} s; target <= {target:.1f} s, ratio {up_max / target:.2f}); close -> done "
        f"median {done_med:.2f} s, max {done_max:.2f} s",
        ok,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
