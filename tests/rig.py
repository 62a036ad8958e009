"""A worker rig: a real journal, the fake MAVI server and a folder, driven one
`run_once()` at a time with an injected clock (the `rig` fixture is in conftest)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import API_KEY, Clock, write_video
from fakemavi import FakeMavi
from mavi_uploader.core.records import FileRecord, Observation, State
from mavi_uploader.journal.sqlite.store import Journal
from mavi_uploader.mavi.client import MaviClient
from mavi_uploader.mavi.ratelimit import RateLimiter
from mavi_uploader.upload.pause import PauseGate
from mavi_uploader.upload.worker import Worker, WorkerSettings


@dataclass
class Rig:
    tmp: Path
    fake: FakeMavi
    journal: Journal
    clock: Clock
    gate: PauseGate
    stop: threading.Event
    client: MaviClient
    watch: Path

    def worker(self, name: str = "w1", **settings: Any) -> Worker:
        return Worker(
            name, self.journal, self.client, self.gate, WorkerSettings(**settings), self.stop,
            clock=self.clock, rng=random.Random(0),
        )  # fmt: skip

    def queue(self, name: str, size: int = 50_000, seed: int = 0) -> FileRecord:
        path = write_video(self.watch / name, size, seed)
        st = path.stat()
        (rec,) = self.journal.sight([Observation(str(path), str(self.watch), size, st.st_mtime_ns)])
        moved = self.journal.transition(rec.id, State.QUEUED, "settled", expect=State.SETTLING)
        assert moved is not None
        return moved

    def get(self, rec: FileRecord) -> FileRecord:
        current = self.journal.get(rec.id)
        assert current is not None
        return current


def make_rig(tmp_path: Path, fake: FakeMavi) -> Iterator[Rig]:
    clock = Clock(time.time())
    journal = Journal.open(tmp_path / "state", clock=clock)
    gate_clock = Clock(time.time())
    gate = PauseGate(journal, clock=gate_clock)
    client = MaviClient(fake.api_base, API_KEY, limiter=RateLimiter(0), timeout=(2.0, 2.0))
    watch = tmp_path / "watch"
    watch.mkdir()
    yield Rig(tmp_path, fake, journal, clock, gate, threading.Event(), client, watch)
    journal.close()
