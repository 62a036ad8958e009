"""Child process of bench/upload_cpu.py: one hash and/or upload, figures as one JSON line.

    .venv/bin/python bench/upload_child.py upload|hash|pipeline URL PATH SIZE

Kept apart from upload_cpu.py and free of its imports, so the process's CPU is the client's
own: the interpreter, mavi_uploader's imports (requests, urllib3...) and the work itself.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def io_counters() -> dict[str, int]:
    """rchar: bytes read by read() calls; read_bytes: bytes fetched from the disk."""
    with open("/proc/self/io", encoding="ascii") as fh:
        return {k.strip(): int(v) for k, _, v in (line.partition(":") for line in fh)}


def main(argv: list[str]) -> int:
    out: dict[str, Any] = {"boot_cpu": cpu()}  # interpreter start-up
    # Imported here, not at the top, so their cost is measured apart from the interpreter's.
    from mavi_uploader.mavi.client import MaviClient  # noqa: PLC0415
    from mavi_uploader.upload.hashing import sha256_file  # noqa: PLC0415

    out["startup_cpu"] = cpu()  # start-up + imports
    mode, url, path, size = argv[0], argv[1], Path(argv[2]), int(argv[3])
    if mode in ("hash", "pipeline"):
        io0, cpu0, t0 = io_counters(), cpu(), time.monotonic()
        out["sha256"] = sha256_file(path)
        io1 = io_counters()
        out["hash_wall"] = time.monotonic() - t0
        out["hash_cpu"] = cpu() - cpu0
        out["hash_disk"] = io1["read_bytes"] - io0["read_bytes"]
        out["hash_rchar"] = io1["rchar"] - io0["rchar"]
    if mode in ("upload", "pipeline"):
        client = MaviClient("http://127.0.0.1:9/unused", "unused-key")
        io0, cpu0, t0 = io_counters(), cpu(), time.monotonic()
        client.upload(url, path, size, path.name)
        io1 = io_counters()
        out["upload_wall"] = time.monotonic() - t0
        out["upload_cpu"] = cpu() - cpu0
        out["upload_disk"] = io1["read_bytes"] - io0["read_bytes"]
        out["upload_rchar"] = io1["rchar"] - io0["rchar"]
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
