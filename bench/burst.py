"""Burst: 10,000 small files in 500 folders appear at once in a watched tree.

    .venv/bin/python bench/burst.py [--files 10000 --dirs 500 --size 4096] [--repeat 3] [--quick]

The files are made in a staging folder next to the watch root (same file system), then one
os.rename moves the staging tree into the root while the daemon (`mavi-uploader run`,
settle_seconds 0.5, concurrency 4, rate limit off) watches it; the fake MAVI server runs in its
own process. The journal is polled read-only. Target: every file journaled within 10 s of the
rename (and none missed: the journal's paths are exactly the files made); then all are
uploaded. Reported: files/s journaled, files/s uploaded (rename to the last `done`) and journal
transitions/s (rows added to `events` over that time).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import common
from common import info, median, result, scalar, spread

JOURNAL_TARGET_S = 10.0


@dataclass
class Burst:
    journaled_s: float  # rename -> all files in the journal
    uploaded_s: float  # rename -> all files done
    events: int  # rows added to events in that time
    missed: int
    extra: int
    done: int
    uploads: int  # completed uploads the fake server recorded


def make_tree(staging: Path, files: int, dirs: int, size: int) -> set[str]:
    """`files` files spread over `dirs` folders (two levels), returns their final paths."""
    names = []
    for d in range(dirs):
        folder = staging / f"cam{d % 10:02d}" / f"day{d:04d}"
        folder.mkdir(parents=True)
        for f in range(d, files, dirs):
            path = folder / f"clip{f:06d}.mp4"
            path.write_bytes(common.small_content(f, size))
            names.append(os.path.relpath(path, staging))
    return set(names)


def one_burst(args: argparse.Namespace, work: Path, run: int) -> Burst:
    rundir = work / f"run-{run}"
    watch, staging = rundir / "watch", rundir / "staging" / "burst"
    watch.mkdir(parents=True)
    relpaths = make_tree(staging, args.files, args.dirs, args.size)
    expected = {os.path.join(watch, "burst", rel) for rel in relpaths}
    with common.FakeServer(rundir) as fake:
        daemon = common.Daemon(
            rundir,
            fake.api_base,
            watch,
            settle_seconds=0.5,
            concurrency=4,
            rate_limit_per_second=0,
        )
        daemon.start()
        try:
            daemon.wait_event("ready", timeout=30)
            conn = daemon.journal()
            events0 = scalar(conn, "SELECT COUNT(*) FROM events")
            started = time.monotonic()
            os.rename(staging, watch / "burst")
            common.poll_until(
                lambda: scalar(conn, "SELECT COUNT(*) FROM files") >= args.files,
                JOURNAL_TARGET_S * 6,
                interval=0.02,
                what="all files journaled",
            )
            journaled = time.monotonic() - started
            common.poll_until(
                lambda: (
                    scalar(conn, "SELECT COUNT(*) FROM files WHERE state = 'done'") >= args.files
                ),
                args.timeout,
                interval=0.1,
                what="all files done",
            )
            uploaded = time.monotonic() - started
            events = scalar(conn, "SELECT COUNT(*) FROM events") - events0
            done = scalar(conn, "SELECT COUNT(*) FROM files WHERE state = 'done'")
            seen = {os.fsdecode(row[0]) for row in conn.execute("SELECT path FROM files")}
            states = dict(conn.execute("SELECT state, COUNT(*) FROM files GROUP BY state"))
            conn.close()
        finally:
            daemon.stop()
        uploads = len(fake.stop().get("completed", []))
    info(f"run {run}: states {states}")
    return Burst(
        journaled,
        uploaded,
        events,
        len(expected - seen),
        len(seen - expected),
        done,
        uploads,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--dirs", type=int, default=500)
    parser.add_argument("--size", type=int, default=4096, help="bytes per file")
    parser.add_argument("--repeat", type=int, default=3, help="bursts (median)")
    parser.add_argument("--timeout", type=float, default=900, help="max seconds to upload all")
    parser.add_argument("--tmp", default="/tmp")
    parser.add_argument("--quick", action="store_true", help="1,000 files in 50 folders, once")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.dirs, args.repeat = 1000, 50, 1
    common.header("burst", args)
    work = common.work_dir("burst", args.tmp)
    with common.cleanup(work, args.keep):
        runs = [one_burst(args, work, run) for run in range(args.repeat)]
    for r in runs:
        info(
            f"journaled {r.journaled_s:.2f} s, uploaded {r.uploaded_s:.1f} s, {r.events} events, "
            f"missed {r.missed}, unexpected {r.extra}, done {r.done}, fake uploads {r.uploads}"
        )
    journaled = median([r.journaled_s for r in runs])
    uploaded = median([r.uploaded_s for r in runs])
    rate = median([r.events / r.uploaded_s for r in runs])
    complete = all(
        r.missed == 0 and r.extra == 0 and r.done == args.files and r.uploads >= args.files
        for r in runs
    )
    ok = journaled <= JOURNAL_TARGET_S and complete
    result(
        f"burst {args.files} files:",
        f"all journaled in {journaled:.2f} s {spread([r.journaled_s for r in runs], '{:.2f}')} "
        f"= {args.files / journaled:.0f} files/s (target <= {JOURNAL_TARGET_S:.0f} s, ratio "
        f"{journaled / JOURNAL_TARGET_S:.2f}), none missed: {complete}",
        ok,
    )
    result(
        f"burst {args.files} files upload:",
        f"all done in {uploaded:.1f} s {spread([r.uploaded_s for r in runs], '{:.1f}')} = "
        f"{args.files / uploaded:.1f} files/s uploaded, {rate:.0f} journal transitions/s "
        f"(no target)",
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
