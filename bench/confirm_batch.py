"""A batch of small files at MAVI's 1 request/s with 3 s of processing: wall time against the ideal.

    .venv/bin/python bench/confirm_batch.py [--files 40 --processing 3 --size 64K]
        [--old-commit ba03e77] [--repeat 3] [--quick]

--files distinct .mts files (no container check) wait in a watch folder; `mavi-uploader run
--once` uploads them (settle_seconds 0.5, rate_limit_per_second 1 as MAVI requires, the
default concurrency 2) to the fake MAVI server, in this process so its request times are on
our monotonic clock. The fake enforces 1 request/s per endpoint (a request sooner than 1 s
after the last one it accepted on that endpoint is refused, as MAVI does) and answers
UPLOADING for --processing seconds after each upload lands, then SUCCESS.

Two daemons in the same run, alternating which goes first:
- new: this tree (no metadata call right after an upload; a first check after a delay learned
  per size class, seeded by [timers] first_check = 3 s; a confirmer thread of its own);
- old, the baseline: the daemon of --old-commit (default ba03e77, the commit before "one read
  per upload" and "confirmation scheduling"), exported with `git archive` into the work dir and
  run with PYTHONPATH on it, same config: each worker asks MAVI right after its upload, and a
  due re-poll waits its turn behind the queued uploads.

Wall time = the first sign request the fake received -> the journal's last `done` (the
daemon's start-up and settle time before its first call is left out, so both versions are
timed on the same work). The ideal: the limiter spaces each endpoint's calls 1.1 s apart (1/s
less its 10 % margin against jitter, mavi/ratelimit.py JITTER_MARGIN), so n signs take
(n - 1) x 1.1 s, the last upload lands right after its sign and needs --processing s, then one
metadata call finds SUCCESS: (n - 1) x 1.1 + processing = 45.9 s for 40 files. The issue's
ideal, n x 1 s + processing (43 s), ignores the margin; the target (<= 1.3x) is checked
against the issue's, the stricter. Also: metadata (and sign) requests per file, including
refused ones, and the most requests the fake received on one endpoint in any 1 s window.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import common
from common import info, median, result, spread

sys.path.insert(0, str(common.TESTS))
from fakemavi import FakeMavi

TARGET = 1.3  # x the issue's ideal
SPACING = 1.1  # s between two calls to one endpoint at 1/s (mavi/ratelimit.py JITTER_MARGIN)
VERSIONS = ("new", "old")


@dataclass
class Run:
    wall: float  # first sign request -> last done
    start_to_done: float  # process start -> last done
    metadata_calls: int  # requests received on the metadata endpoint (refused included)
    sign_calls: int
    refused: int  # requests the fake refused over the limit (all endpoints)
    max_per_second: int  # most requests on one endpoint within any 1 s window


def export_old(commit: str, work: Path) -> Path:
    """The old daemon's package, from `git archive` (the repository's worktrees untouched)."""
    dest = work / f"old-{commit}"
    data = subprocess.run(
        ["git", "-C", str(common.REPO), "archive", "--format=tar", commit, "daemon"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "daemon"


def code_of(pythonpath: Path) -> str:
    """Which mavi_uploader a daemon started with this PYTHONPATH imports."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(
        [common.PYTHON, "-c", "import mavi_uploader; print(mavi_uploader.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def make_files(watch: Path, files: int, size: int, salt: int) -> None:
    watch.mkdir(parents=True)
    for n in range(files):
        (watch / f"clip{n:03d}.mts").write_bytes(common.small_content(salt * 10_000 + n, size))


def one_run(args: argparse.Namespace, work: Path, version: str, code: Path, rep: int) -> Run:
    rundir = work / f"run-{rep + 1}-{version}"
    watch = rundir / "watch"
    make_files(watch, args.files, args.size, rep * 2 + VERSIONS.index(version))
    with FakeMavi(common.API_KEY, store_bodies=False) as fake:
        fake.processing_seconds = args.processing
        fake.enforce_limit_per_second = 1.0
        daemon = common.Daemon(
            rundir,
            fake.api_base,
            watch,
            settle_seconds=0.5,
            rate_limit_per_second=1,
            concurrency=2,
            rescan_interval_seconds=0,
        )
        daemon.env["PYTHONPATH"] = str(code)
        offset = time.time() - time.monotonic()  # journal times (epoch) -> the fake's clock
        started = time.monotonic()
        proc = daemon.start("--once")
        try:
            code_ = proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            daemon.stop()
            sys.exit(f"{version}: run --once did not end in {args.timeout} s; see {rundir}")
        if code_ != 0:
            sys.exit(f"{version}: run --once exited {code_}; see {daemon.log_path}")
        with daemon.journal() as conn:
            done = common.scalar(conn, "SELECT COUNT(*) FROM files WHERE state = 'done'")
            last_done = float(
                conn.execute("SELECT MAX(at) FROM events WHERE to_state = 'done'").fetchone()[0]
            )
        if done != args.files:
            sys.exit(f"{version}: {done} of {args.files} files done; see {rundir}")
        signs = fake.calls_to("sign")
        first_sign = min(c.time for c in signs)
        end = last_done - offset
        return Run(
            wall=end - first_sign,
            start_to_done=end - started,
            metadata_calls=len(fake.calls_to("metadata")),
            sign_calls=len(signs),
            refused=fake.refused_over_limit,
            max_per_second=max(fake.max_calls_in_window(e) for e in ("sign", "metadata")),
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=40, help="files in the batch")
    parser.add_argument("--processing", type=float, default=3.0, help="MAVI's s to SUCCESS")
    parser.add_argument("--size", type=common.parse_size, default=64 * 1024, help="file size")
    parser.add_argument("--old-commit", default="ba03e77", help="the baseline's commit")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (median)")
    parser.add_argument("--timeout", type=float, default=900.0, help="s for one run --once")
    parser.add_argument("--tmp", default="/tmp")
    parser.add_argument("--quick", action="store_true", help="10 files, once")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.repeat = 10, 1
    common.header("confirm_batch", args)
    work = common.work_dir("confirm_batch", args.tmp)
    with common.cleanup(work, args.keep):
        codes = {"new": common.REPO / "daemon", "old": export_old(args.old_commit, work)}
        for version, path in codes.items():
            info(f"{version}: {code_of(path)}")
        runs: dict[str, list[Run]] = {v: [] for v in VERSIONS}
        for rep in range(args.repeat):
            order = VERSIONS if rep % 2 == 0 else VERSIONS[::-1]
            for version in order:
                run = one_run(args, work, version, codes[version], rep)
                runs[version].append(run)
                info(
                    f"rep {rep + 1} {version}: first sign -> last done {run.wall:.1f} s "
                    f"(process start -> last done {run.start_to_done:.1f} s), metadata calls "
                    f"{run.metadata_calls}, sign calls {run.sign_calls}, refused {run.refused},"
                    f" max per endpoint in 1 s {run.max_per_second}; load "
                    f"{os.getloadavg()[0]:.2f}"
                )
    return 0 if report(args, runs) else 1


def report(args: argparse.Namespace, runs: dict[str, list[Run]]) -> bool:
    n = args.files
    ideal_issue = n * 1.0 + args.processing
    ideal_limiter = (n - 1) * SPACING + args.processing
    wall = {v: median([r.wall for r in runs[v]]) for v in VERSIONS}
    for v in VERSIONS:
        info(
            f"{v}: wall {spread([r.wall for r in runs[v]], '{:.1f}')} s, metadata/file "
            f"{spread([r.metadata_calls / n for r in runs[v]], '{:.2f}')}"
        )
    ratio = wall["new"] / ideal_issue
    passed = bool(ratio <= TARGET)
    result(
        f"confirm_batch {n} files at 1/s, {args.processing:g} s processing:",
        f"first sign -> last done: new {wall['new']:.1f} s, old ({args.old_commit}) "
        f"{wall['old']:.1f} s; ideal n x 1 s + {args.processing:g} s = {ideal_issue:.1f} s: "
        f"new {ratio:.2f}x, old {wall['old'] / ideal_issue:.2f}x (target <= {TARGET}x); "
        f"limiter's ideal (n-1) x {SPACING} + {args.processing:g} = {ideal_limiter:.1f} s: "
        f"new {wall['new'] / ideal_limiter:.2f}x, old {wall['old'] / ideal_limiter:.2f}x; "
        f"new/old {wall['new'] / wall['old']:.2f}",
        passed,
    )
    per = {v: median([r.metadata_calls / n for r in runs[v]]) for v in VERSIONS}
    signs = {v: median([r.sign_calls / n for r in runs[v]]) for v in VERSIONS}
    refused = {v: max(r.refused for r in runs[v]) for v in VERSIONS}
    worst = {v: max(r.max_per_second for r in runs[v]) for v in VERSIONS}
    result(
        f"confirm_batch {n} files calls:",
        f"metadata per file new {per['new']:.2f}, old {per['old']:.2f}; sign per file new "
        f"{signs['new']:.2f}, old {signs['old']:.2f}; refused over the limit new "
        f"{refused['new']}, old {refused['old']}; most on one endpoint in 1 s new "
        f"{worst['new']}, old {worst['old']} (no target)",
    )
    return passed


if __name__ == "__main__":
    sys.exit(main())
