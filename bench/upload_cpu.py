"""Upload CPU cost: mavi-uploader's client against curl, both streaming a file to a local sink.

    .venv/bin/python bench/upload_cpu.py [--sizes 1G,4G] [--repeat 3] [--quick] [--no-cold]

For each size: one file in --tmp, one sink (bench/sink.py, its own process). Each repeat runs
`curl -s -o /dev/null -F file=@PATH URL` and a child Python process (bench/upload_child.py)
calling `MaviClient.upload(url, path, size, filename)` (no sign: the sink URL is used directly), in
alternating order, each reaped with wait4 so its user+sys CPU is that process's own. Targets:
CPU seconds per GB <= 1.5x curl's, wall time <= 1.2x curl's (medians of the repeats; GB = GiB).

Also measured: sha256 speed of hashing.sha256_file against `openssl dgst -sha256` (both use
OpenSSL's SHA-NI code; coreutils' sha256sum does not and is ~7x slower here), and the
worker's two passes over the file (hash, then upload) with a cold cache: the file's pages
are evicted (posix_fadvise DONTNEED, or --evict drop_caches as root) and /proc/self/io
tells how many bytes each pass read from the disk.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common
from common import GiB, MiB, info, median, result, size_label, spread

CPU_TARGET = 1.5
WALL_TARGET = 1.2


# ---- the parent -----------------------------------------------------------------------------


@dataclass
class Run:
    wall: float  # process start to reaped
    cpu: float  # user + sys of that process
    inner: dict[str, Any] = field(default_factory=dict)


def run_process(cmd: list[str]) -> tuple[Run, str]:
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.stdout.close()
    code, usage = common.wait4(proc)
    wall = time.monotonic() - started
    if code != 0:
        raise RuntimeError(f"{cmd[0]} exited {code}: {out[:300]}")
    return Run(wall, common.rusage_cpu(usage)), out


def run_curl(url: str, path: Path, size: int) -> Run:
    cmd = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_upload}"]
    run, out = run_process([*cmd, "-F", f"file=@{path}", url])
    status, sent = out.split()
    if status != "200" or int(float(sent)) < size:
        raise RuntimeError(f"curl upload failed: HTTP {status}, {sent} bytes sent")
    return run


def run_child(mode: str, url: str, path: Path, size: int) -> Run:
    cmd = [common.PYTHON, str(common.BENCH / "upload_child.py"), mode, url, str(path)]
    run, out = run_process([*cmd, str(size)])
    run.inner = json.loads(out.strip().splitlines()[-1])
    return run


def start_sink() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [common.PYTHON, str(common.BENCH / "sink.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())["url"]


def bench_size(args: argparse.Namespace, work: Path, size: int) -> bool:
    label = size_label(size)
    gib = size / GiB
    path = common.write_big_file(work / f"video-{label}.mp4", size, seed=size % 9973)
    sink, url = start_sink()
    ok = True
    try:
        common.read_through(path)  # both clients start with the file in the page cache
        ours: list[Run] = []
        curl: list[Run] = []
        for rep in range(args.repeat):
            if rep % 2 == 0:
                curl.append(run_curl(url, path, size))
                ours.append(run_child("upload", url, path, size))
            else:
                ours.append(run_child("upload", url, path, size))
                curl.append(run_curl(url, path, size))
        ok &= report_upload(label, gib, ours, curl)
        call_cpu = median([r.inner["upload_cpu"] for r in ours]) / gib
        curl_cpu = median([r.cpu for r in curl]) / gib
        report_hash(args, label, path, size, call_cpu, curl_cpu)
        if args.cold:
            report_cold(
                args, label, url, path, size, median([r.inner["upload_wall"] for r in ours])
            )
    finally:
        sink.terminate()
        sink.wait(timeout=30)
        if sink.stdout is not None:
            sink.stdout.close()
        path.unlink(missing_ok=True)
    return ok


def report_upload(label: str, gib: float, ours: list[Run], curl: list[Run]) -> bool:
    ours_cpu = median([r.cpu for r in ours]) / gib
    curl_cpu = median([r.cpu for r in curl]) / gib
    cpu_ratio = ours_cpu / curl_cpu
    ours_wall, curl_wall = median([r.wall for r in ours]), median([r.wall for r in curl])
    wall_ratio = ours_wall / curl_wall
    info(
        f"{label} ours cpu-s {spread([r.cpu for r in ours])} wall {spread([r.wall for r in ours])}"
    )
    info(
        f"{label} curl cpu-s {spread([r.cpu for r in curl])} wall {spread([r.wall for r in curl])}"
    )
    startup = median([r.inner["startup_cpu"] for r in ours])
    boot = median([r.inner["boot_cpu"] for r in ours])
    call_cpu = median([r.inner["upload_cpu"] for r in ours]) / gib
    call_wall = median([r.inner["upload_wall"] for r in ours])
    info(
        f"{label} ours, upload() call only: {call_cpu:.3f} cpu-s/GB, {call_wall:.3f} s wall "
        f"({gib * 1024 / call_wall:.0f} MB/s); process start-up {boot:.3f} cpu-s + imports "
        f"{startup - boot:.3f} cpu-s (paid once per daemon, not per file)"
    )
    result(
        f"upload_cpu {label} cpu:",
        f"ours {ours_cpu:.3f} cpu-s/GB, curl {curl_cpu:.3f} cpu-s/GB, ratio {cpu_ratio:.2f} "
        f"(target <= {CPU_TARGET}); upload() call alone {call_cpu:.3f} cpu-s/GB, "
        f"ratio {call_cpu / curl_cpu:.2f}",
        cpu_ratio <= CPU_TARGET,
    )
    result(
        f"upload_cpu {label} wall:",
        f"ours {ours_wall:.3f} s, curl {curl_wall:.3f} s, ratio {wall_ratio:.2f} "
        f"(target <= {WALL_TARGET}); upload() call alone {call_wall:.3f} s, "
        f"ratio {call_wall / curl_wall:.2f}",
        wall_ratio <= WALL_TARGET,
    )
    return cpu_ratio <= CPU_TARGET and wall_ratio <= WALL_TARGET


def report_hash(
    args: argparse.Namespace, label: str, path: Path, size: int, call_cpu: float, curl_cpu: float
) -> None:
    ours, base, cpu = [], [], []
    for _ in range(args.repeat):
        run = run_child("hash", "-", path, size)
        ours.append(size / MiB / run.inner["hash_wall"])
        cpu.append(run.inner["hash_cpu"] / (size / GiB))
        ref, out = run_process(["openssl", "dgst", "-sha256", str(path)])
        if out.split()[-1] != run.inner["sha256"]:
            raise RuntimeError("sha256 mismatch between hashing.sha256_file and openssl")
        base.append(size / MiB / ref.wall)
    info(f"{label} sha256 MB/s ours {spread(ours, '{:.0f}')} openssl {spread(base, '{:.0f}')}")
    result(
        f"upload_cpu {label} sha256:",
        f"hashing.sha256_file {median(ours):.0f} MB/s (warm cache, in-process), "
        f"`openssl dgst -sha256` {median(base):.0f} MB/s (whole process), "
        f"ratio {median(ours) / median(base):.2f} (no target)",
    )
    pipeline = median(cpu) + call_cpu
    result(
        f"upload_cpu {label} pipeline cpu:",
        f"sha256 {median(cpu):.3f} + upload() {call_cpu:.3f} = {pipeline:.3f} cpu-s/GB for the "
        f"worker's hash-then-upload, curl upload {curl_cpu:.3f} cpu-s/GB, "
        f"ratio {pipeline / curl_cpu:.2f} (no target; the 1.5x target is for the upload)",
    )


def _evict(args: argparse.Namespace, path: Path) -> None:
    if args.evict == "drop_caches":
        if not common.drop_all_caches(1):
            sys.exit("cannot write /proc/sys/vm/drop_caches (needs root); use --evict fadvise")
    else:
        common.evict(path)


def report_cold(
    args: argparse.Namespace, label: str, url: str, path: Path, size: int, warm_upload: float
) -> None:
    fits = size < common.meminfo_kb("MemAvailable") * 1024
    pipe: list[Run] = []
    cold_upload: list[Run] = []
    for _ in range(args.repeat):
        _evict(args, path)
        pipe.append(run_child("pipeline", url, path, size))
        _evict(args, path)
        cold_upload.append(run_child("upload", url, path, size))
    mb = MiB
    hash_disk = median([r.inner["hash_disk"] for r in pipe]) / mb
    upload_disk = median([r.inner["upload_disk"] for r in pipe]) / mb
    rchar = median([r.inner["hash_rchar"] + r.inner["upload_rchar"] for r in pipe]) / mb
    hash_wall = median([r.inner["hash_wall"] for r in pipe])
    upload_wall = median([r.inner["upload_wall"] for r in pipe])
    cold_wall = median([r.inner["upload_wall"] for r in cold_upload])
    cold_disk = median([r.inner["upload_disk"] for r in cold_upload]) / mb
    info(
        f"{label} cold ({args.evict}): hash {spread([r.inner['hash_wall'] for r in pipe])} s, "
        f"then upload {spread([r.inner['upload_wall'] for r in pipe])} s; cold upload alone "
        f"{spread([r.inner['upload_wall'] for r in cold_upload])} s"
    )
    result(
        f"upload_cpu {label} cold pipeline:",
        f"file read {rchar:.0f} MB by read() (twice), from disk: sha256 pass {hash_disk:.0f} MB "
        f"in {hash_wall:.2f} s, upload pass {upload_disk:.0f} MB in {upload_wall:.2f} s "
        f"(warm upload {warm_upload:.2f} s); file {'fits' if fits else 'does NOT fit'} in "
        f"MemAvailable, so the second pass is served from the page cache. Cold upload alone "
        f"(read {cold_disk:.0f} MB from disk) {cold_wall:.2f} s: a second disk read would cost "
        f"+{cold_wall - warm_upload:.2f} s, ratio {cold_wall / warm_upload:.2f} (no target)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1G,4G", help='file sizes (default "1G,4G")')
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--tmp", default="/tmp", help="where the test files go")
    parser.add_argument("--quick", action="store_true", help="--sizes 256M (a quick run)")
    parser.add_argument("--no-cold", dest="cold", action="store_false", help="skip cold cache")
    parser.add_argument("--evict", choices=("fadvise", "drop_caches"), default="fadvise")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes = "256M"
    sizes = [common.parse_size(s) for s in args.sizes.split(",")]
    common.header("upload_cpu", args)
    work = common.work_dir("upload_cpu", args.tmp)
    ok = True
    with common.cleanup(work, args.keep):
        for size in sizes:
            common.need_space(work, size)
            ok &= bench_size(args, work, size)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
