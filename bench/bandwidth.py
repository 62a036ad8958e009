"""bandwidth_limit accuracy: upload through the real worker at a limit, report the achieved rate.

.venv/bin/python bench/bandwidth.py [--limit 4M] [--size 40M] [--workers 2]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fakemavi import FakeMavi
from mavi_uploader.core.records import Observation, State
from mavi_uploader.journal.sqlite.store import Journal
from mavi_uploader.mavi.client import MaviClient
from mavi_uploader.mavi.ratelimit import BandwidthLimiter, RateLimiter
from mavi_uploader.units import parse_bandwidth
from mavi_uploader.upload.pause import PauseGate
from mavi_uploader.upload.worker import Worker, WorkerSettings

KEY = "bench-key-0123456789"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", default="4M", help="bandwidth_limit, e.g. 4M")
    parser.add_argument("--size", default="40M", help="bytes per worker, e.g. 40M")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    limit, size = parse_bandwidth(args.limit), parse_bandwidth(args.size)
    with tempfile.TemporaryDirectory() as tmp, FakeMavi(KEY, store_bodies=False) as fake:
        root = Path(tmp)
        journal = Journal.open(root / "state")
        client = MaviClient(fake.api_base, KEY, limiter=RateLimiter(0))
        shared, gate, stop = BandwidthLimiter(limit), PauseGate(journal), threading.Event()
        watch = root / "watch"
        watch.mkdir()
        for n in range(args.workers):
            path = watch / f"f{n}.mp4"
            path.write_bytes(random.Random(n).randbytes(size))  # noqa: S311 - test data
            obs = Observation(str(path), str(watch), size, path.stat().st_mtime_ns)
            (rec,) = journal.sight([obs])
            journal.transition(rec.id, State.QUEUED, "bench")
        workers = [
            Worker(f"w{n}", journal, client, gate, WorkerSettings(), stop, bandwidth=shared)
            for n in range(args.workers)
        ]
        threads = [threading.Thread(target=w.run_once) for w in workers]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        journal.close()
    achieved = args.workers * size / elapsed
    ratio = achieved / limit
    verdict = "PASS" if 0.8 <= ratio <= 1.2 else "MISS"
    print(
        f"RESULT bandwidth {args.workers}x{args.size} at {args.limit}: "
        f"{achieved / 1e6:.2f} MB/s achieved, limit {limit / 1e6:.2f} MB/s, "
        f"ratio {ratio:.3f} (target 0.8-1.2) {verdict}"
    )
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
