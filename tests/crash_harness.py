"""Crash harness: `kill -9` the daemon at random and at chosen moments, restart it, then audit.

Used by tests/test_crash.py (a short run) and bench/crash_soak.py (a long one). The fake MAVI
server runs in this process, so its upload records and the kill times share one monotonic
clock: a file accepted twice is "explained" only by a kill that left that very upload in
flight (its row `uploading` with that asset) before the repeat was accepted.

The audit reads the journal read-only and checks: every file reached `done` (or `duplicate`
for identical copies), the fake holds each one complete and sha256-equal, nothing is left in
`uploading`/`confirming`, each file's events form one unbroken chain, and every extra accepted
upload of a file is explained by a kill while it was in flight.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import shutil
import signal
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import API_KEY, DaemonProcess, sha256_of, write_video
from fakemavi import FakeMavi, Fault, UploadRecord

# Where a kill is aimed. "random": a seeded delay after the process starts (may land during
# start-up, recovery or the rescan); the others fire on the k-th such event after the start.
MOMENTS = (
    "random",  # any time, start-up included
    "claimed",  # a worker just claimed a file: hashing, dedupe or signing
    "sign_started",  # a sign request reached the server (its answer may be slowed)
    "storage_started",  # bytes are being sent (the body is cut off by the kill)
    "storage_landed",  # the server has the whole file; the 2xx (maybe slowed) is not journaled
    "metadata_started",  # confirmation (or the landed-check after a restart) in progress
)
FINAL_OK = ("done", "duplicate")
IN_FLIGHT = ("uploading", "confirming")


READY = '"event": "ready"'  # the JSON log line of a daemon that has started


@dataclass(frozen=True)
class Slow:
    """Answer `share` of an endpoint's requests after a delay drawn from [low, high] s."""

    share: float
    low: float
    high: float


@dataclass
class CrashConfig:
    files: int = 100  # distinct contents (including the late ones)
    copies: int = 5  # extra files with the same bytes as an earlier one
    big_files: int = 2  # of the distinct files, this many are big (hashing takes a while)
    big_size: int = 4_000_000
    min_size: int = 20_000
    max_size: int = 300_000
    late_share: float = 0.1  # written during the kill loop (some while down, some while up)
    kills: int = 20
    seed: int = 1
    concurrency: int = 3
    settle_seconds: float = 0.3
    rate_limit_per_second: float = 200.0
    random_kill_max: float = 1.6  # "random" kills land 0.05..this many s after the start
    nth_event_max: int = 3  # targeted kills fire on the 1st..nth matching event
    jitter_max: float = 0.02  # extra delay after a targeted event, before the kill
    trigger_timeout: float = 8.0  # no such event by then (nothing left to do): kill anyway
    finish_timeout: float = 90.0
    slow: dict[str, Slow] = field(
        default_factory=lambda: {
            "sign": Slow(0.2, 0.1, 0.4),
            "storage": Slow(0.4, 0.2, 0.7),
            "metadata": Slow(0.2, 0.1, 0.4),
        }
    )
    waiting_share: float = 0.3  # uploads whose first metadata answer is WAITING


@dataclass
class Figures:
    files: int = 0
    kills: int = 0
    moments: Counter[str] = field(default_factory=Counter)
    in_flight_at_kills: Counter[str] = field(default_factory=Counter)
    done: int = 0
    duplicate: int = 0
    lost: int = 0
    corrupt: int = 0
    stuck: int = 0
    broken_chains: int = 0
    generations: int = 0  # rows beyond one per path
    uploads: int = 0  # storage uploads the server accepted
    extra_uploads: int = 0  # accepted uploads of a file beyond its first
    unexplained_extra: int = 0  # ... with no kill that cut the previous one off
    max_extra_per_kill: int = 0
    extra_landed_before_kill: int = 0  # the bytes were there, the restart sent them again
    extra_landed_after_kill: int = 0  # the server read the cut-off body after the kill
    landed_resumes: int = 0  # restarts that found the bytes already there (no re-send)
    orphan_assets: int = 0  # signed, never uploaded (kill between sign and journal, ...)
    early_exits: int = 0  # daemon runs that ended before the kill
    left_for_last_run: int = 0  # files not final when the kills were over
    final_exit: int | None = None
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def extra_per_kill(self) -> float:
        return self.extra_uploads / self.kills if self.kills else 0.0

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("files", str(self.files)),
            ("kills", str(self.kills)),
            *((f"  at {m}", self._moment(m)) for m in MOMENTS),
            *(
                (f"  {w} at a kill", str(self.in_flight_at_kills[w]))
                for w in ("hashing", "dedupe/signing", "sending", "confirming")
            ),
            ("done", str(self.done)),
            ("duplicate", str(self.duplicate)),
            ("lost", str(self.lost)),
            ("corrupt", str(self.corrupt)),
            ("stuck", str(self.stuck)),
            ("broken event chains", str(self.broken_chains)),
            ("extra generations", str(self.generations)),
            ("uploads accepted", str(self.uploads)),
            ("extra uploads", str(self.extra_uploads)),
            ("extra uploads per kill", f"{self.extra_per_kill:.3f}"),
            ("  landed before the kill", str(self.extra_landed_before_kill)),
            ("  landed after the kill", str(self.extra_landed_after_kill)),
            ("max extra for one kill", str(self.max_extra_per_kill)),
            ("unexplained extra", str(self.unexplained_extra)),
            ("landed-check resumes", str(self.landed_resumes)),
            ("orphan assets", str(self.orphan_assets)),
            ("early exits", str(self.early_exits)),
            ("left for the last run", str(self.left_for_last_run)),
            ("final exit code", str(self.final_exit)),
            ("seconds", f"{self.seconds:.1f}"),
        ]

    def _moment(self, moment: str) -> str:
        idle = self.moments[f"{moment}(idle)"]
        hit = self.moments[moment]
        return f"{hit + idle} ({idle} idle)" if idle else str(hit)

    def table(self) -> str:
        return format_table(["figure", "value"], [list(r) for r in self.rows()])


def format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def _fmt_counter(counter: Counter[str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(counter.items())) or "-"


# ---- the fake server, observed --------------------------------------------------------


class ObservedFake(FakeMavi):
    """FakeMavi that counts requests as they start and uploads as they land, slows a seeded
    share of answers, and gives a seeded share of uploads a WAITING first metadata answer."""

    def __init__(self, cfg: CrashConfig) -> None:
        super().__init__(API_KEY, seed=cfg.seed, store_bodies=False)
        self.changed = threading.Condition()
        self.started: Counter[str] = Counter()
        self.landed = 0
        self._plan_rng = random.Random(f"fake:{cfg.seed}")
        self._slow = dict(cfg.slow)
        self._waiting_share = cfg.waiting_share

    def _take_fault(self, endpoint: str) -> Fault | None:
        # Called as each request starts, before its body is read.
        with self.changed:
            self.started[endpoint] += 1
            self.changed.notify_all()
        fault = super()._take_fault(endpoint)
        plan = self._slow.get(endpoint)
        if fault is None and plan is not None:
            with self.lock:
                if self._plan_rng.random() < plan.share:
                    fault = Fault("slow", delay=self._plan_rng.uniform(plan.low, plan.high))
        return fault

    def _complete_upload(self, record: UploadRecord) -> None:
        with self.lock:  # the script is read by super(); hold the lock across both
            waiting = self._plan_rng.random() < self._waiting_share
            self.set_metadata_script(["WAITING", "SUCCESS"] if waiting else ["SUCCESS"])
            super()._complete_upload(record)
        with self.changed:
            self.landed += 1
            self.changed.notify_all()

    def count(self, what: str) -> int:
        with self.changed:
            return self._count(what)

    def _count(self, what: str) -> int:
        if what == "storage_landed":
            return self.landed
        return self.started[what.removesuffix("_started")]

    def wait_past(self, what: str, base: int, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self._count(what) > base, timeout)


# ---- the journal, read-only ------------------------------------------------------------


class JournalView:
    """Read-only queries on the daemon's journal (it may be running; WAL lets us read)."""

    def __init__(self, state_dir: Path) -> None:
        self.db = state_dir / "journal.sqlite3"

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            yield conn
        finally:
            conn.close()

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._connect() as conn:
            return conn.execute(sql, args).fetchall()

    def try_query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row] | None:
        """None while the journal does not exist yet or is busy (e.g. recovering its WAL)."""
        if not self.db.exists():
            return None
        try:
            return self.query(sql, args)
        except sqlite3.Error:
            return None

    def claims(self) -> int | None:
        rows = self.try_query("SELECT COUNT(*) FROM events WHERE reason LIKE 'claimed by %'")
        return None if rows is None else int(rows[0][0])

    def where_in_flight(self) -> tuple[Counter[str], frozenset[tuple[str, str]]]:
        """Where the workers were, judged from the rows a kill left leased; and the files
        (name, asset id) whose bytes may have been on their way."""
        where: Counter[str] = Counter()
        sending: set[tuple[str, str]] = set()
        if not self.db.exists():  # killed before the journal was created
            return where, frozenset()
        rows = self.query(
            "SELECT path, state, sha256, asset_id, lease_owner FROM files"
            " WHERE state = 'uploading' OR (state = 'confirming' AND lease_owner IS NOT NULL)"
        )
        for row in rows:
            if row["state"] == "confirming":
                where["confirming"] += 1
            elif row["sha256"] is None:
                where["hashing"] += 1
            elif row["asset_id"] is None:
                where["dedupe/signing"] += 1
            else:
                where["sending"] += 1
                sending.add((os.path.basename(os.fsdecode(row["path"])), row["asset_id"]))
        return where, frozenset(sending)

    def unfinished(self, expected: int) -> int | None:
        """Files not yet in a final state (counting paths with no row), or None if unknown."""
        rows = self.try_query(
            "SELECT f.state FROM files f JOIN"
            " (SELECT path, MAX(id) AS id FROM files GROUP BY path) latest ON latest.id = f.id"
        )
        if rows is None:
            return None
        final = [r for r in rows if r["state"] not in ("settling", "queued", *IN_FLIGHT)]
        return expected - len(final)


# ---- the run ---------------------------------------------------------------------------


@dataclass
class Corpus:
    """The files: path -> sha256; `late` ones wait in a staging folder until moved in."""

    sha: dict[str, str] = field(default_factory=dict)
    late: list[tuple[Path, Path]] = field(default_factory=list)  # (staged, final)

    def write_late(self, n: int) -> None:
        for staged, final in self.late[:n]:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staged, final)  # appears whole, like a finished export
        del self.late[:n]


def make_corpus(cfg: CrashConfig, watch: Path, staging: Path, rng: random.Random) -> Corpus:
    corpus = Corpus()
    originals: list[Path] = []
    late_count = round(cfg.files * cfg.late_share)
    for n in range(cfg.files):
        big = n < cfg.big_files
        size = cfg.big_size if big else rng.randint(cfg.min_size, cfg.max_size)
        name = f"clip_{n:04d}.{('mp4', 'mov', 'mkv', 'm4v')[n % 4]}"
        path = watch / f"day{n % 3}" / name
        if n >= cfg.files - late_count:
            staged = write_video(staging / name, size, seed=cfg.seed)
            corpus.late.append((staged, path))
            corpus.sha[str(path)] = sha256_of(staged)
            continue
        write_video(path, size, seed=cfg.seed)
        corpus.sha[str(path)] = sha256_of(path)
        if not big:
            originals.append(path)
    for n in range(cfg.copies):
        source = originals[rng.randrange(len(originals))]
        copy = watch / "copies" / f"copy_{n:03d}{source.suffix}"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, copy)
        corpus.sha[str(copy)] = corpus.sha[str(source)]
    return corpus


def poll(condition: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """True once `condition()` holds; False after `timeout` s (the caller decides what then)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


@dataclass(frozen=True)
class Kill:
    at: float  # time.monotonic(), the clock of the fake's upload records
    moment: str
    sending: frozenset[tuple[str, str]] = frozenset()  # (file name, asset id) cut off


class Harness:
    def __init__(self, cfg: CrashConfig, workdir: Path, say: Callable[[str], None]) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.say = say
        self.workdir = workdir
        self.fake = ObservedFake(cfg)
        self.kills: list[Kill] = []
        self.figures = Figures()

    def run(self) -> Figures:
        started = time.monotonic()
        self.fake.start()
        daemon: DaemonProcess | None = None
        try:
            watch = self.workdir / "watch"
            watch.mkdir(parents=True, exist_ok=True)
            corpus = make_corpus(self.cfg, watch, self.workdir / "staging", self.rng)
            daemon = DaemonProcess(
                self.workdir,
                self.fake,
                watch,
                concurrency=self.cfg.concurrency,
                settle_seconds=self.cfg.settle_seconds,
                rate_limit_per_second=self.cfg.rate_limit_per_second,
            )
            view = JournalView(daemon.state_dir)
            self._kill_loop(daemon, view, corpus)
            corpus.write_late(len(corpus.late))  # whatever the loop did not write yet
            self.figures.left_for_last_run = view.unfinished(len(corpus.sha)) or 0
            self._finish(daemon, view, len(corpus.sha))
            audit(view, corpus, self.fake, self.kills, self.cfg.concurrency, self.figures)
        finally:
            if daemon is not None:
                daemon.close()
            self.fake.stop()
        self.figures.seconds = time.monotonic() - started
        return self.figures

    def _kill_loop(self, daemon: DaemonProcess, view: JournalView, corpus: Corpus) -> None:
        cfg = self.cfg
        schedule = [MOMENTS[i % len(MOMENTS)] for i in range(cfg.kills)]
        self.rng.shuffle(schedule)
        late_every = max(1, cfg.kills // max(1, len(corpus.late)))
        for i, moment in enumerate(schedule):
            write_late = corpus.late and i % late_every == late_every - 1
            up = self.rng.random() < 0.5
            if write_late and not up:
                corpus.write_late(1)  # written while the daemon is down: the rescan finds it
            base = self._count(moment, view)
            daemon.start()
            if write_late and up:
                corpus.write_late(1)  # written while it runs: the watcher sees it
            hit = self._wait_for_moment(moment, base, view)
            assert daemon.proc is not None
            code = daemon.proc.poll()
            if code is not None:
                self.figures.early_exits += 1
                self.figures.problems.append(f"kill {i + 1}: the daemon exited by itself ({code})")
                continue
            at = time.monotonic()
            daemon.kill(signal.SIGKILL)
            label = moment if hit else f"{moment}(idle)"
            where, sending = view.where_in_flight()
            self.kills.append(Kill(at, moment, sending))
            self.figures.moments[label] += 1
            self.figures.in_flight_at_kills.update(where)
            self.say(f"kill {len(self.kills)}/{cfg.kills} at {label}: {_fmt_counter(where)}")
        self.figures.kills = len(self.kills)

    def _count(self, moment: str, view: JournalView) -> int:
        if moment == "random":
            return 0
        if moment == "claimed":
            return view.claims() or 0
        return self.fake.count(moment)

    def _wait_for_moment(self, moment: str, base: int, view: JournalView) -> bool:
        cfg = self.cfg
        if moment == "random":
            # A seeded delay, not a wait for a condition: the point is to land anywhere.
            time.sleep(self.rng.uniform(0.05, cfg.random_kill_max))
            return True
        nth = self.rng.randint(1, cfg.nth_event_max)
        jitter = self.rng.uniform(0.0, cfg.jitter_max)
        if moment == "claimed":
            hit = poll(lambda: (view.claims() or 0) >= base + nth, cfg.trigger_timeout, 0.005)
        else:
            hit = self.fake.wait_past(moment, base + nth - 1, cfg.trigger_timeout)
        time.sleep(jitter)
        return hit

    def _finish(self, daemon: DaemonProcess, view: JournalView, expected: int) -> None:
        # This start's "ready" first (the log holds every earlier run's): when the kills left
        # nothing to do, a SIGTERM sent at once would land before the daemon has its
        # handlers (the interpreter's default: killed, -15).
        readies = daemon.log_text().count(READY)
        daemon.start()
        poll(lambda: daemon.log_text().count(READY) > readies, self.cfg.finish_timeout, 0.05)
        finished = poll(lambda: view.unfinished(expected) == 0, self.cfg.finish_timeout, 0.1)
        if not finished:
            self.figures.problems.append(
                f"not finished after {self.cfg.finish_timeout:g}s of the last run"
            )
        assert daemon.proc is not None
        if daemon.proc.poll() is None:
            daemon.proc.send_signal(signal.SIGTERM)
        try:
            self.figures.final_exit = daemon.wait_exit(timeout=60)
        except Exception as exc:
            self.figures.problems.append(f"the last run did not stop on SIGTERM: {exc}")
        if self.figures.final_exit not in (0, None):
            self.figures.problems.append(f"the last run exited {self.figures.final_exit}")


# ---- the audit -------------------------------------------------------------------------


def audit(
    view: JournalView,
    corpus: Corpus,
    fake: FakeMavi,
    kills: list[Kill],
    concurrency: int,
    figures: Figures,
) -> None:
    """Fill `figures` (and its problems) from the journal, the disk and the fake server."""
    files = view.query("SELECT * FROM files ORDER BY id")
    events = view.query("SELECT * FROM events ORDER BY id")
    figures.files = len(corpus.sha)
    by_path: dict[str, list[sqlite3.Row]] = defaultdict(list)
    for row in files:
        by_path[os.fsdecode(row["path"])].append(row)
    figures.generations = sum(len(rows) - 1 for rows in by_path.values())
    for path in sorted(set(by_path) - set(corpus.sha)):
        figures.problems.append(f"{path}: in the journal but not written by the harness")

    with fake.lock:
        completed = list(fake.completed)
        uploads = dict(fake.uploads)
        orphans = [a for a in fake.assets.values() if a.uploads_completed == 0]
    figures.uploads = len(completed)
    figures.orphan_assets = len(orphans)
    groups = Counter(corpus.sha.values())

    for path, disk_sha in sorted(corpus.sha.items()):
        rows = by_path.get(path)
        if not rows:
            figures.lost += 1
            figures.problems.append(f"{path}: lost (no row in the journal)")
            continue
        last = rows[-1]
        state = last["state"]
        allowed = FINAL_OK if groups[disk_sha] > 1 else ("done",)
        if state not in allowed:
            figures.lost += 1
            figures.problems.append(
                f"{path}: lost (row #{last['id']} ended {state}, last_error={last['last_error']})"
            )
            continue
        figures.done += state == "done"
        figures.duplicate += state == "duplicate"
        problem = _corrupt(last, path, disk_sha, uploads)
        if problem:
            figures.corrupt += 1
            figures.problems.append(f"{path}: corrupt: {problem}")

    # Everything the server accepted must be the whole file it was named after.
    names = {os.path.basename(p): sha for p, sha in corpus.sha.items()}
    for upload in completed:
        want = names.get(upload.filename)
        if want is not None and upload.sha256 != want:
            figures.corrupt += 1
            figures.problems.append(
                f"{upload.filename}: the server accepted {upload.size} bytes that are not the "
                f"file (asset {upload.asset_id})"
            )

    stuck = [r for r in files if r["state"] in IN_FLIGHT]
    figures.stuck = len(stuck)
    for row in stuck:
        figures.problems.append(f"{os.fsdecode(row['path'])}: stuck in {row['state']}")

    check_chains(files, events, figures)
    figures.landed_resumes = sum("already uploaded" in e["reason"] for e in events)
    check_extra_uploads(completed, kills, concurrency, figures)


def _corrupt(row: sqlite3.Row, path: str, disk_sha: str, uploads: dict[str, UploadRecord]) -> str:
    if row["sha256"] != disk_sha:
        return f"journal sha256 {row['sha256']} != file {disk_sha}"
    held = uploads.get(row["asset_id"]) if row["asset_id"] else None
    if held is None:
        return f"asset {row['asset_id']} has no completed upload on the server"
    if held.sha256 != disk_sha or held.size != os.path.getsize(path):
        return f"asset {row['asset_id']} holds {held.size} bytes, sha256 {held.sha256}"
    if row["state"] == "done" and held.filename != os.path.basename(path):
        return f"asset {row['asset_id']} was uploaded as {held.filename}"
    return ""


def check_chains(files: list[sqlite3.Row], events: list[sqlite3.Row], figures: Figures) -> None:
    chains: dict[int, list[sqlite3.Row]] = defaultdict(list)
    for event in events:
        chains[event["file_id"]].append(event)
    for row in files:
        chain = chains.get(row["id"], [])
        where = f"{os.fsdecode(row['path'])} (#{row['id']})"
        broken = ""
        if not chain:
            broken = "no events"
        elif chain[0]["from_state"] is not None:
            broken = f"first event starts from {chain[0]['from_state']}"
        else:
            for prev, event in itertools.pairwise(chain):
                if event["from_state"] != prev["to_state"]:
                    broken = (
                        f"event {event['id']} ({event['from_state']}->{event['to_state']},"
                        f" {event['reason']!r}) follows {prev['to_state']}"
                    )
                    break
            else:
                if chain[-1]["to_state"] != row["state"]:
                    broken = f"last event ends {chain[-1]['to_state']}, row is {row['state']}"
        if broken:
            figures.broken_chains += 1
            figures.problems.append(f"{where}: event chain broken: {broken}")


def check_extra_uploads(
    completed: list[UploadRecord], kills: list[Kill], concurrency: int, figures: Figures
) -> None:
    """A file accepted again is fine only if a kill cut the daemon off while that upload was
    on its way (its row left `uploading` with that asset), before the repeat: the bytes
    landed (or were still in the server's socket buffer) but the daemon never journaled the
    2xx. Each such kill explains one repeat of that file."""
    by_name: dict[str, list[UploadRecord]] = defaultdict(list)
    for upload in completed:
        by_name[upload.filename].append(upload)
    per_kill: Counter[int] = Counter()
    for name, ups in by_name.items():
        ups.sort(key=lambda u: u.completed_at)
        used: set[int] = set()
        for prev, again in itertools.pairwise(ups):
            figures.extra_uploads += 1
            cause = next(
                (
                    i
                    for i, kill in enumerate(kills)
                    if i not in used
                    and kill.at < again.completed_at
                    and (name, prev.asset_id) in kill.sending
                ),
                None,
            )
            if cause is None:
                figures.unexplained_extra += 1
                figures.problems.append(
                    f"{name}: accepted again {again.completed_at - prev.completed_at:.2f}s later"
                    f" (assets {prev.asset_id}, {again.asset_id}) and no kill cut off the"
                    " first one"
                )
            else:
                used.add(cause)
                per_kill[cause] += 1
                if prev.completed_at < kills[cause].at:
                    figures.extra_landed_before_kill += 1
                else:
                    figures.extra_landed_after_kill += 1
    figures.max_extra_per_kill = max(per_kill.values(), default=0)
    if figures.max_extra_per_kill > concurrency:
        figures.problems.append(
            f"one kill explains {figures.max_extra_per_kill} extra uploads, more than "
            f"concurrency={concurrency} uploads could have been in flight"
        )


def run_crash_harness(
    cfg: CrashConfig, workdir: Path, say: Callable[[str], None] | None = None
) -> Figures:
    """Run the whole harness in `workdir` (a fresh directory) and return its figures.

    Args:
        say: gets one progress line per kill (e.g. `print`); silent by default.
    """
    return Harness(cfg, workdir, say or (lambda _line: None)).run()


__all__ = [
    "MOMENTS",
    "CrashConfig",
    "Figures",
    "Kill",
    "ObservedFake",
    "Slow",
    "audit",
    "check_chains",
    "check_extra_uploads",
    "format_table",
    "run_crash_harness",
]
