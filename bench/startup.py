"""Start-up: the report commands' wall time against a bare Python start, in the same run.

    .venv/bin/python bench/startup.py [--runs 40] [--files 100] [--against CHECKOUT]... [--quick]

Each command runs as `python -m mavi_uploader ...` with PYTHONPATH at a checkout's daemon/
(this one, and each --against, e.g. a `git worktree add /tmp/main-ref main` to compare with
main), the way a person or a monitoring script runs it: the default config and state dir
(XDG_CONFIG_HOME and XDG_STATE_HOME in the work dir, so platformdirs is on the path), a
journal of --files queued rows made by `enqueue`. Bytecode is cached as an installed package
has it (PYTHONDONTWRITEBYTECODE is dropped, one warm-up run each). Every round runs
`python -c pass` and each command of each checkout once, in a shuffled order, so load from
other processes falls on all of them alike; the table shows medians over --runs rounds and
each median's ratio to `python -c pass`. Target: `status --json` <= 8x `python -c pass`.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import common
from common import info, median, result

TARGET_RATIO = 8.0
COMMANDS = {
    "status --json": ["status", "--json"],
    "list --json": ["list", "--json"],
    "history 1 --json": ["history", "1", "--json"],
    "--version": ["--version"],
}
BARE = "python -c pass"


def environment(work: Path, checkout: Path | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MAVI_") and k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")
    }
    env["XDG_CONFIG_HOME"] = str(work / "config")
    env["XDG_STATE_HOME"] = str(work / "state")
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout / "daemon")
    return env


def prepare(work: Path, files: int) -> None:
    """The default config (one watch folder) and a journal of `files` queued rows."""
    watch = work / "watch"
    watch.mkdir()
    config_dir = work / "config" / "mavi-uploader"
    config_dir.mkdir(parents=True)
    (config_dir / "config.toml").write_text(f'[[watch]]\npath = "{watch}"\n')
    # .mts: no container check, so the bytes need not be a real video.
    paths = [watch / f"clip{n:04d}.mts" for n in range(files)]
    for n, path in enumerate(paths):
        path.write_bytes(common.small_content(n, 4096))
    subprocess.run(
        [common.PYTHON, "-m", "mavi_uploader", "enqueue", *map(str, paths)],
        env=environment(work, common.REPO),
        check=True,
        stdout=subprocess.DEVNULL,
    )


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds, and the child's CPU seconds (user + system, from wait4)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    code, usage = common.wait4(proc)
    elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"{' '.join(argv)} exited {code}")
    return elapsed, common.rusage_cpu(usage)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="rounds (median)")
    parser.add_argument("--files", type=int, default=100, help="rows in the journal")
    parser.add_argument(
        "--against",
        type=Path,
        action="append",
        default=[],
        help="another checkout to measure in the same rounds (repeatable)",
    )
    parser.add_argument("--tmp", default="/tmp")
    parser.add_argument("--quick", action="store_true", help="10 rounds")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = 10
    common.header("startup", args)
    checkouts = {"this": common.REPO, **{str(path): path.resolve() for path in args.against}}
    work = common.work_dir("startup", args.tmp)
    with common.cleanup(work, args.keep):
        prepare(work, args.files)
        jobs = {(BARE, ""): ([common.PYTHON, "-c", "pass"], environment(work, None))}
        for name, path in checkouts.items():
            env = environment(work, path)
            for label, command in COMMANDS.items():
                jobs[(label, name)] = ([common.PYTHON, "-m", "mavi_uploader", *command], env)
        for job in jobs.values():
            timed(*job)  # writes the bytecode; not measured
        walls: dict[tuple[str, str], list[float]] = {key: [] for key in jobs}
        cpus: dict[tuple[str, str], list[float]] = {key: [] for key in jobs}
        for _ in range(args.runs):
            order = list(jobs)
            random.shuffle(order)
            for key in order:
                elapsed, cpu = timed(*jobs[key])
                walls[key].append(elapsed)
                cpus[key].append(cpu)
    load = os.getloadavg()
    info(f"load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    table(list(checkouts), walls, cpus)
    ratio = median(walls[("status --json", "this")]) / median(walls[(BARE, "")])
    cpu_ratio = median(cpus[("status --json", "this")]) / median(cpus[(BARE, "")])
    result(
        "startup status --json:",
        f"{ratio:.1f}x python -c pass in wall time ({median(walls[(BARE, '')]) * 1000:.1f} ms),"
        f" {cpu_ratio:.1f}x in CPU time (target <= {TARGET_RATIO:g}x wall)",
        ratio <= TARGET_RATIO,
    )
    return 0 if ratio <= TARGET_RATIO else 1


def table(
    names: list[str],
    walls: dict[tuple[str, str], list[float]],
    cpus: dict[tuple[str, str], list[float]],
) -> None:
    """Medians in ms and as multiples of `python -c pass`: wall time, then CPU time."""
    bare_wall, bare_cpu = median(walls[(BARE, "")]), median(cpus[(BARE, "")])
    heads = " | ".join(f"{name}: wall ms | x | CPU ms | x" for name in names)
    print(f"\n| command | {heads} |")
    print(f"|---|{'---:|---:|---:|---:|' * len(names)}")
    bare = f"{bare_wall * 1000:.1f} | 1.0 | {bare_cpu * 1000:.1f} | 1.0"
    print(f"| `{BARE}` | {' | '.join(bare for _ in names)} |")
    for label in COMMANDS:
        cells = []
        for name in names:
            wall, cpu = median(walls[(label, name)]), median(cpus[(label, name)])
            ratios = f"{wall / bare_wall:.1f} | {cpu * 1000:.1f} | {cpu / bare_cpu:.1f}"
            cells.append(f"{wall * 1000:.1f} | {ratios}")
        print(f"| `{label}` | {' | '.join(cells)} |")
    print(flush=True)


if __name__ == "__main__":
    sys.exit(main())
