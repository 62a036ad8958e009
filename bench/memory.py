"""Peak RSS of the whole daemon while it uploads one big file: flat in the file size.

    .venv/bin/python bench/memory.py [--sizes 100M,4G] [--repeat 3] [--quick]

Runs `mavi-uploader run --once` as a subprocess against the fake MAVI server (its own
process, --no-store-bodies), rate limit off, on a watch folder holding one file. Peak RSS is
the daemon process's ru_maxrss from wait4 (cross-checked with VmHWM from /proc/PID/status,
polled every 20 ms until it exits). Targets: the largest size <= 80 MB, and every size within
+-10% of the smallest one.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import common
from common import MiB, info, median, result, size_label, spread

RSS_TARGET_MB = 80.0
FLAT_TOLERANCE = 0.10


def one_run(work: Path, api_base: str, watch: Path, run: int) -> tuple[float, float, float]:
    """(ru_maxrss MB, last VmHWM MB, wall s) of one `run --once`."""
    rundir = work / f"run-{run}"
    rundir.mkdir()
    daemon = common.Daemon(
        rundir,
        api_base,
        watch,
        settle_seconds=0.5,
        rate_limit_per_second=0,
        rescan_interval_seconds=0,
    )
    started = time.monotonic()
    proc = daemon.start("--once")
    hwm = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        hwm = max(hwm, common.status_kb(proc.pid, "VmHWM") or 0)
        time.sleep(0.02)
    wall = time.monotonic() - started
    code = proc.returncode = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"run --once exited {code}; see {daemon.log_path}")
    with daemon.journal() as conn:
        done = common.scalar(conn, "SELECT COUNT(*) FROM files WHERE state = 'done'")
    if done != 1:
        sys.exit(f"expected 1 file done, journal has {done}; see {daemon.log_path}")
    return usage.ru_maxrss / 1024, hwm / 1024, wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100M,4G", help='file sizes (default "100M,4G")')
    parser.add_argument("--repeat", type=int, default=3, help="runs per size (median)")
    parser.add_argument("--tmp", default="/tmp", help="where the test files go")
    parser.add_argument("--quick", action="store_true", help="--sizes 100M,1G --repeat 1")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeat = "100M,1G", 1
    sizes = sorted(common.parse_size(s) for s in args.sizes.split(","))
    common.header("memory", args)
    work = common.work_dir("memory", args.tmp)
    peaks: dict[int, float] = {}
    with common.cleanup(work, args.keep), common.FakeServer(work) as fake:
        for size in sizes:
            common.need_space(work, size)
            watch = work / f"watch-{size_label(size)}"
            video = common.write_big_file(watch / "clip.mp4", size, seed=size % 9973)
            runs = [
                one_run(work, fake.api_base, watch, len(peaks) * 100 + rep)
                for rep in range(args.repeat)
            ]
            video.unlink()
            peaks[size] = median([r[0] for r in runs])
            info(
                f"{size_label(size)}: ru_maxrss MB {spread([r[0] for r in runs], '{:.1f}')}, "
                f"polled VmHWM MB {spread([r[1] for r in runs], '{:.1f}')}, "
                f"wall s {spread([r[2] for r in runs], '{:.1f}')} "
                f"({size / MiB / median([r[2] for r in runs]):.0f} MB/s incl. start-up)"
            )
        uploaded = len(fake.stop().get("completed", []))
    info(f"fake server recorded {uploaded} completed uploads")
    small, big = sizes[0], sizes[-1]
    ok = peaks[big] <= RSS_TARGET_MB
    result(
        f"memory {size_label(big)}:",
        f"peak RSS {peaks[big]:.1f} MB (target <= {RSS_TARGET_MB:.0f} MB), "
        f"ratio {peaks[big] / RSS_TARGET_MB:.2f} of target",
        ok,
    )
    for size in sizes[1:]:
        ratio = peaks[size] / peaks[small]
        flat = abs(ratio - 1) <= FLAT_TOLERANCE
        ok &= flat
        result(
            f"memory flat {size_label(size)} vs {size_label(small)}:",
            f"{peaks[size]:.1f} MB vs {peaks[small]:.1f} MB, ratio {ratio:.3f} "
            f"(target {1 - FLAT_TOLERANCE:.2f}..{1 + FLAT_TOLERANCE:.2f})",
            flat,
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
