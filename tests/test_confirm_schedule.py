"""Confirmation scheduling: no metadata call right after an upload (the first check waits a
learned delay), and due confirmations never wait behind uploads (the daemon's confirmer)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import DaemonProcess, wait_for, write_video
from fakemavi import FakeMavi, Fault
from mavi_uploader.core.first_check import FirstChecks
from mavi_uploader.core.records import State
from mavi_uploader.journal import Work
from mavi_uploader.upload.worker import Worker
from rig import Rig, make_rig


@pytest.fixture
def rig(tmp_path: Path, fake: FakeMavi) -> Iterator[Rig]:
    yield from make_rig(tmp_path, fake)


def worker(rig: Rig, checks: FirstChecks, work: Work, name: str) -> Worker:
    return Worker(
        name, rig.journal, rig.client, rig.gate, rig.worker().settings, rig.stop,
        clock=rig.clock, work=work, first_checks=checks,
    )  # fmt: skip


def test_an_upload_is_not_asked_about_until_its_first_check_is_due(rig: Rig) -> None:
    checks = FirstChecks(initial=4.0)
    rec = rig.queue("a.mp4", 100_000)
    uploader = worker(rig, checks, Work.UPLOADS, "w1")
    assert uploader.run_once()
    sent = rig.get(rec)
    assert sent.state is State.CONFIRMING and sent.lease_owner is None
    assert sent.next_attempt_at == pytest.approx(rig.clock.now + 4.0)
    assert rig.fake.calls_to("metadata") == []  # no call spent on an answer known early
    assert not uploader.run_once()  # an upload worker never polls
    confirmer = worker(rig, checks, Work.CONFIRMATIONS, "confirmer")
    assert not confirmer.run_once()  # not due yet
    rig.clock.now += 4.0
    assert confirmer.run_once()
    assert rig.get(rec).state is State.DONE
    assert len(rig.fake.calls_to("metadata")) == 1
    assert checks.delay(100_000) < 4.0  # the first check found it: try a little sooner


def test_an_early_first_check_teaches_the_next_files_of_that_size(rig: Rig) -> None:
    rig.fake.set_metadata_script(["UPLOADING", "SUCCESS"], times=1)
    checks = FirstChecks(initial=1.0)
    rec = rig.queue("a.mp4", 100_000)
    worker(rig, checks, Work.UPLOADS, "w1").run_once()
    confirmer = worker(rig, checks, Work.CONFIRMATIONS, "confirmer")
    for _ in range(2):
        rig.clock.now = max(rig.clock.now, rig.get(rec).next_attempt_at or 0) + 0.5
        assert confirmer.run_once()
    done = rig.get(rec)
    assert done.state is State.DONE
    took = rig.clock.now - (done.accepted_at or 0)
    assert checks.delay(100_000) == pytest.approx(took * 1.1)
    assert checks.delay(300 * 1024 * 1024) == 4.0  # a larger class keeps its own


def test_a_due_confirmation_is_polled_while_the_only_upload_worker_is_busy(
    fake: FakeMavi, daemon_factory: Callable[..., DaemonProcess]
) -> None:
    fake.inject("storage", Fault("slow", delay=0.0))  # the first upload: answered at once
    fake.inject("storage", Fault("hold"))  # the second: held until the test lets it go
    daemon = daemon_factory(concurrency=1, timers={"first_check": 0.5})
    small = write_video(daemon.watch / "a-small.mp4", 10_000)
    write_video(daemon.watch / "b-large.mp4", 2_000_000)
    daemon.start()
    try:
        daemon.wait_ready()
        wait_for(lambda: fake.holding == 1, timeout=30, what="the second upload held")

        def small_done() -> bool:
            rows = {row["path"]: row["state"] for row in daemon.files()}
            return rows.get(str(small)) == "done"

        wait_for(small_done, timeout=30, what="the first file confirmed meanwhile")
        assert fake.holding == 1  # ...while the one upload worker is still sending
    finally:
        fake.release_held()
    wait_for(lambda: daemon.status()["counts"]["done"] == 2, timeout=30, what="both done")
