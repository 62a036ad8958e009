"""Latency: close() to queued on the fast path next to the settle path, and to uploaded.

    .venv/bin/python bench/latency.py [--settle 2 --size 1M --files 10] [--repeat 3] [--quick]

`mavi-uploader run` (settle_seconds 2, otherwise the defaults: rate limit 1/s per endpoint,
concurrency 2) watches a folder; the fake MAVI server runs in this process so its record of
each completed upload carries a time.monotonic() stamp comparable with ours. One at a time,
files of --size are written into the folder (after a random 0.2-1.2 s pause, so the writes
fall at random phases of the daemon's settle tick), alternating two kinds:
- export.mp4: a complete MP4 (ftyp, mdat, moov). Its close (inotify's IN_CLOSE_WRITE) takes
  the fast path: nobody else holds it open for writing and its container is complete, so it
  is queued at once.
- clip.mts: a transport stream of the same size. No container check applies, so it keeps
  the settle rule: queued once it held still settle_seconds. The baseline, in the same run.
For each: close -> queued (the journal's `queued` event `at`, time.time(), against
time.time() at close), close -> the fake server recording the completed upload, and close ->
the journal's `done` event. Targets: the fast path's close -> queued max <= 1.5 s (its 1 s
quiet + 0.5 s), whatever
settle_seconds is; the settle path's close -> uploaded max <= settle_seconds + 1 s (medians
over --repeat daemon runs).
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

import common
from common import info, median, result, scalar, spread

sys.path.insert(0, str(common.TESTS))
from containers import mp4
from fakemavi import FakeMavi

EVENT_AT = (
    "SELECT MIN(e.at) FROM events e JOIN files f ON f.id = e.file_id"
    " WHERE f.path = ? AND e.to_state = ?"
)
KINDS = ("fast", "settle")  # export.mp4, clip.mts
FAST_TARGET = 1.5  # seconds, close -> queued on the fast path: its 1 s quiet (closed_quiet) + 0.5
Times = dict[str, list[float]]  # "queued" | "uploaded" | "done" -> seconds after close


def one_file(
    fake: FakeMavi, conn: sqlite3.Connection, path: Path, data: bytes
) -> tuple[float, float, float]:
    """Write one file; (close -> queued, close -> upload completed, close -> done) in s."""
    before = len(fake.completed)
    with open(path, "wb") as fh:
        fh.write(data)
    closed_mono, closed_wall = time.monotonic(), time.time()
    common.poll_until(lambda: len(fake.completed) > before, 60, interval=0.005, what="upload")
    record = fake.completed[-1]
    assert record.filename == path.name and record.size == len(data), record
    blob = os.fsencode(str(path))

    def at(state: str) -> float:
        common.poll_until(
            lambda: scalar(conn, EVENT_AT, blob, state) > 0, 60, interval=0.01, what=state
        )
        return scalar_float(conn, EVENT_AT, blob, state) - closed_wall

    return at("queued"), record.completed_at - closed_mono, at("done")


def scalar_float(conn: sqlite3.Connection, sql: str, *args: object) -> float:
    return float(conn.execute(sql, args).fetchone()[0])


def one_run(args: argparse.Namespace, work: Path, run: int) -> dict[str, Times]:
    rundir = work / f"run-{run}"
    watch = rundir / "watch"
    watch.mkdir(parents=True)
    times: dict[str, Times] = {k: {"queued": [], "uploaded": [], "done": []} for k in KINDS}
    pause = random.Random(run)  # noqa: S311 - random phases of the daemon's settle tick
    with FakeMavi(common.API_KEY, store_bodies=False) as fake:
        daemon = common.Daemon(rundir, fake.api_base, watch, settle_seconds=args.settle)
        daemon.start()
        try:
            daemon.wait_event("ready", timeout=30)
            conn = daemon.journal()
            for n in range(args.files):
                for kind in KINDS:
                    media = common.small_content(run * 1000 + n, args.size)
                    if kind == "fast":
                        data, name = mp4(media[: args.size - 1000]), f"export{run:02d}-{n:03d}.mp4"
                    else:
                        data, name = media, f"clip{run:02d}-{n:03d}.mts"
                    got = one_file(fake, conn, watch / name, data)
                    for what, seconds in zip(("queued", "uploaded", "done"), got, strict=True):
                        times[kind][what].append(seconds)
                    time.sleep(0.2 + pause.random())
            conn.close()
        finally:
            daemon.stop()
    for kind in KINDS:
        for what in ("queued", "uploaded", "done"):
            info(f"run {run}: {kind:6} close->{what:8} s {spread(times[kind][what], '{:.2f}')}")
    return times


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

    def typical(kind: str, what: str, pick: Callable[[list[float]], float] = median) -> float:
        return median([pick(r[kind][what]) for r in runs])

    fast_q, fast_q_max = typical("fast", "queued"), typical("fast", "queued", max)
    slow_q, slow_q_max = typical("settle", "queued"), typical("settle", "queued", max)
    fast_up, slow_up_max = typical("fast", "uploaded"), typical("settle", "uploaded", max)
    target = args.settle + 1.0
    ok = fast_q_max <= FAST_TARGET and slow_up_max <= target
    result(
        f"latency {common.size_label(args.size)} settle {args.settle:g} s:",
        f"close -> queued: fast path median {fast_q:.3f} s, max {fast_q_max:.3f} s (target <="
        f" {FAST_TARGET} s); settle path median {slow_q:.2f} s, max {slow_q_max:.2f} s"
        f" (ratio {slow_q / max(fast_q, 1e-3):.0f}x); close -> uploaded: fast median"
        f" {fast_up:.2f} s, settle median {typical('settle', 'uploaded'):.2f} s, max"
        f" {slow_up_max:.2f} s (target <= {target:.1f} s); close -> done: fast median"
        f" {typical('fast', 'done'):.2f} s, settle median {typical('settle', 'done'):.2f} s",
        ok,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
