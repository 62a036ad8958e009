"""Start-up rescan: the daemon starts on a tree of 100,000 files the journal already has as done.

    .venv/bin/python bench/rescan.py [--files 100000 --dirs 1000] [--repeat 3] [--quick] [--cold]

The files are made once (small, distinct), then a fresh journal is created with
mavi_uploader.journal.open_journal and seeded directly (executemany on `files`, one `events`
row each) with state 'done' and each file's real size and mtime_ns, as if they had been
uploaded. Each repeat starts `mavi-uploader run` on that tree and journal and measures process
start -> the first JSON "rescan done" log line (its timestamp; the daemon reports "ready" to
systemd before it, since the start-up rescan runs on its own thread), and the line's seconds.
Target: < 10 s, with new_files == 0 (nothing taken for new). --cold drops the page, dentry
and inode caches (echo 3 > /proc/sys/vm/drop_caches, root, machine-wide) before each start.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import sys
import time
from pathlib import Path

import common
from common import info, median, result, spread

from mavi_uploader.core.records import path_to_blob
from mavi_uploader.journal import open_journal
from mavi_uploader.journal.sqlite.store import DB_NAME

READY_TARGET_S = 10.0


def make_tree(watch: Path, files: int, dirs: int, size: int) -> list[str]:
    paths = []
    per_dir = -(-files // dirs)
    for d in range(dirs):
        folder = os.path.join(watch, f"d{d:04d}")
        os.mkdir(folder)
        for f in range(d * per_dir, min(files, (d + 1) * per_dir)):
            path = os.path.join(folder, f"clip{f:06d}.mp4")
            with open(path, "wb") as fh:
                fh.write(common.small_content(f, size))
            paths.append(path)
    return paths


def seed_journal(state_dir: Path, watch: Path, paths: list[str]) -> None:
    """Rows in state 'done' with matching size/mtime_ns, as a finished upload leaves them."""
    open_journal(state_dir).close()  # creates the schema at the current version
    now = time.time()
    root = path_to_blob(os.path.normpath(str(watch)))
    rows = []
    for n, path in enumerate(paths):
        st = os.stat(path)
        sha = hashlib.sha256(path.encode()).hexdigest()
        rows.append(
            (path_to_blob(path), root, st.st_size, st.st_mtime_ns, now, sha, f"re_{n:018d}", now)
        )
    conn = sqlite3.connect(state_dir / DB_NAME, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO files (path, watch_root, state, size, mtime_ns, stable_since, sha256,"
        " asset_id, bytes_sent, created_at, updated_at)"
        " VALUES (?1, ?2, 'done', ?3, ?4, ?5, ?6, ?7, ?3, ?8, ?8)",
        rows,
    )
    conn.execute(
        "INSERT INTO events (file_id, at, from_state, to_state, reason)"
        " SELECT id, updated_at, 'confirming', 'done', 'seeded by bench/rescan.py' FROM files"
    )
    conn.execute("COMMIT")
    conn.close()


def one_start(
    args: argparse.Namespace, work: Path, api_base: str, watch: Path
) -> tuple[float, float, int]:
    """(process start -> start-up rescan done s, its seconds, new_files) of one daemon start."""
    if args.cold and not common.drop_all_caches(3):
        sys.exit("--cold needs root (writes /proc/sys/vm/drop_caches)")
    daemon = common.Daemon(work, api_base, watch, settle_seconds=5.0)
    daemon.start()
    try:
        done = daemon.wait_event("rescan done", timeout=120)
    finally:
        daemon.stop()
    return (
        common.iso_to_epoch(done["timestamp"]) - daemon.started_at,
        done["seconds"],
        done["new_files"],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--dirs", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64, help="bytes per file")
    parser.add_argument("--repeat", type=int, default=3, help="daemon starts (median)")
    parser.add_argument("--tmp", default="/tmp")
    parser.add_argument("--cold", action="store_true", help="drop all caches before each start")
    parser.add_argument("--quick", action="store_true", help="10,000 files in 100 folders")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.dirs = 10_000, 100
    common.header("rescan", args)
    work = common.work_dir("rescan", args.tmp)
    with common.cleanup(work, args.keep), common.FakeServer(work) as fake:
        watch = work / "watch"
        watch.mkdir()
        t0 = time.monotonic()
        paths = make_tree(watch, args.files, args.dirs, args.size)
        t1 = time.monotonic()
        seed_journal(work / "state", watch, paths)
        info(
            f"made {len(paths)} files in {t1 - t0:.1f} s, seeded the journal in "
            f"{time.monotonic() - t1:.1f} s"
        )
        starts = [one_start(args, work, fake.api_base, watch) for _ in range(args.repeat)]
    ready = median([s[0] for s in starts])
    rescan = median([s[1] for s in starts])
    new_files = max(s[2] for s in starts)
    ok = ready < READY_TARGET_S and new_files == 0
    info(f"start -> ready s {spread([s[0] for s in starts])}")
    info(f"rescan_s {spread([s[1] for s in starts])}")
    result(
        f"rescan {args.files} done files{' (cold caches)' if args.cold else ''}:",
        f"process start -> ready {ready:.2f} s (rescan_s {rescan:.2f} s, "
        f"{args.files / rescan:.0f} files/s), new_files {new_files} "
        f"(target < {READY_TARGET_S:.0f} s and 0 new, ratio {ready / READY_TARGET_S:.2f})",
        ok,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
