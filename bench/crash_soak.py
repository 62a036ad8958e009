"""Crash soak: the crash harness of tests/test_crash.py, longer (e.g. 200 files, 100 kills).

Run from the repo root:  .venv/bin/python bench/crash_soak.py --files 200 --kills 100
Starts the fake MAVI server on 127.0.0.1 in this process and `mavi-uploader run` as a
subprocess it kills with SIGKILL; prints one column of figures per run; exits 1 on a problem.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

from crash_harness import CrashConfig, Figures, format_table, run_crash_harness  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200, help="distinct files (default 200)")
    parser.add_argument("--copies", type=int, default=None, help="identical copies (files/20)")
    parser.add_argument("--kills", type=int, default=100, help="kill -9 per run (default 100)")
    parser.add_argument("--seed", type=int, default=1, help="first run's seed (default 1)")
    parser.add_argument("--concurrency", type=int, default=3, help="workers (default 3)")
    parser.add_argument("--runs", type=int, default=1, help="runs, seeds seed..seed+runs-1")
    parser.add_argument(
        "--late-share",
        type=float,
        default=0.3,
        help="share of files written during the kills, so later kills still find work",
    )
    parser.add_argument("--waiting-share", type=float, default=0.3, help="first answer WAITING")
    parser.add_argument("--verbose", action="store_true", help="one line per kill")
    parser.add_argument("--keep", action="store_true", help="keep the work dirs (journal, log)")
    args = parser.parse_args(argv)
    if args.files < 2 or args.kills < 0 or args.concurrency < 1 or args.runs < 1:
        parser.error("need --files >= 2, --kills >= 0, --concurrency >= 1, --runs >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: list[tuple[int, Figures]] = []
    for seed in range(args.seed, args.seed + args.runs):
        cfg = CrashConfig(
            files=args.files,
            copies=args.files // 20 if args.copies is None else args.copies,
            kills=args.kills,
            seed=seed,
            concurrency=args.concurrency,
            late_share=args.late_share,
            waiting_share=args.waiting_share,
            finish_timeout=180.0,
        )
        workdir = Path(tempfile.mkdtemp(prefix=f"crash-soak-{seed}-"))
        print(
            f"run seed={seed}: {cfg.files} files + {cfg.copies} copies, {cfg.kills} kills,"
            f" concurrency {cfg.concurrency}, in {workdir}",
            flush=True,
        )
        figures = run_crash_harness(cfg, workdir, print if args.verbose else None)
        results.append((seed, figures))
        for problem in figures.problems:
            print(f"  PROBLEM: {problem}")
        if not args.keep and not figures.problems:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    names = [name for name, _ in results[0][1].rows()]
    columns = [dict(f.rows()) for _, f in results]
    header = ["figure", *(f"seed {seed}" for seed, _ in results)]
    print(format_table(header, [[n, *(c[n] for c in columns)] for n in names]))
    return 1 if any(f.problems for _, f in results) else 0


if __name__ == "__main__":
    sys.exit(main())
