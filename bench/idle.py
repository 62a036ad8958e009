"""Idle cost: the daemon watching 1,000 folders while nothing happens.

    .venv/bin/python bench/idle.py [--dirs 1000 --window 60] [--repeat 3] [--quick]

Makes --dirs empty folders (40 top-level folders with 24 sub-folders each for 1,000) under
the watch root, starts `mavi-uploader run` with the default settings (settle_seconds 5,
concurrency 2, inotify) against the fake MAVI server, waits for "ready", then reads
utime+stime from /proc/PID/stat at ready + 5 s and at ready + 5 s + --window. Target:
< 0.5 CPU-seconds in the 60 s window.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import common
from common import info, median, result, spread

CPU_TARGET_S = 0.5
GRACE_S = 5.0


def make_dirs(watch: Path, count: int) -> int:
    top = max(1, count // 25)  # 1000 -> 40 x (1 + 24)
    made = 0
    for t in range(top):
        parent = watch / f"cam{t:03d}"
        parent.mkdir()
        made += 1
        for s in range((count - top) // top + (1 if t < (count - top) % top else 0)):
            (parent / f"day{s:03d}").mkdir()
            made += 1
    return made


def one_window(work: Path, api_base: str, watch: Path, window: float, run: int) -> float:
    rundir = work / f"run-{run}"
    rundir.mkdir()
    daemon = common.Daemon(rundir, api_base, watch)
    daemon.start()
    try:
        daemon.wait_event("ready", timeout=60)
        time.sleep(GRACE_S)
        before = common.cpu_seconds(daemon.pid)
        time.sleep(window)
        used = common.cpu_seconds(daemon.pid) - before
        threads = len(list(Path(f"/proc/{daemon.pid}/task").iterdir()))
    finally:
        daemon.stop()
    info(f"run {run}: {used:.2f} cpu-s in {window:.0f} s, {threads} threads")
    return used


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dirs", type=int, default=1000)
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured")
    parser.add_argument("--repeat", type=int, default=3, help="windows (median)")
    parser.add_argument("--tmp", default="/tmp")
    parser.add_argument("--quick", action="store_true", help="one 20 s window")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args(argv)
    if args.quick:
        args.window, args.repeat = 20.0, 1
    common.header("idle", args)
    work = common.work_dir("idle", args.tmp)
    with common.cleanup(work, args.keep), common.FakeServer(work) as fake:
        watch = work / "watch"
        watch.mkdir()
        made = make_dirs(watch, args.dirs)
        used = [one_window(work, fake.api_base, watch, args.window, n) for n in range(args.repeat)]
        calls = len(fake.stop().get("calls", []))
    target = CPU_TARGET_S * args.window / 60.0
    figure = median(used)
    result(
        f"idle {made} folders {args.window:.0f} s:",
        f"{figure:.2f} cpu-s {spread(used, '{:.2f}')} ({figure / args.window * 100:.2f}% of a "
        f"core; target < {target:.2f} cpu-s, ratio {figure / target:.2f}); API calls {calls}",
        figure < target,
    )
    return 0 if figure < target else 1


if __name__ == "__main__":
    sys.exit(main())
