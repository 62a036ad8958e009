"""The worker, one `run_once()` at a time, against a real journal and the fake MAVI server."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import API_KEY, held_by, held_open, sha256_of, write_video
from fakemavi import FakeMavi, Fault
from mavi_uploader.config.model import AfterUpload
from mavi_uploader.config.timers import Timers
from mavi_uploader.core.records import Observation, State
from mavi_uploader.core.retry import MAX_SERVER_FAILURES
from mavi_uploader.journal import Work
from mavi_uploader.mavi.ratelimit import BandwidthLimiter
from mavi_uploader.upload.aftercare import Aftercare
from mavi_uploader.upload.worker import Worker, WorkerSettings
from rig import Rig, make_rig


@pytest.fixture
def rig(tmp_path: Path, fake: FakeMavi) -> Iterator[Rig]:
    yield from make_rig(tmp_path, fake)


def test_happy_path_signs_uploads_confirms(rig: Rig) -> None:
    rec = rig.queue("a.mp4", 3_000_000)
    assert rig.worker().run_once() is True
    done = rig.get(rec)
    assert done.state is State.DONE
    assert done.sha256 == sha256_of(Path(rec.path))
    assert rig.fake.uploads[done.asset_id or ""].sha256 == done.sha256
    assert not any(c.had_authorization for c in rig.fake.calls_to("storage"))
    steps = [(e.from_state, e.to_state) for e in rig.journal.history(rec.id)][2:]
    assert steps == [
        (State.QUEUED, State.UPLOADING),
        (State.UPLOADING, State.UPLOADING),  # signed: asset id journaled before the bytes
        (State.UPLOADING, State.CONFIRMING),
        (State.CONFIRMING, State.DONE),
    ]
    assert rig.worker().run_once() is False


def test_metadata_waiting_is_polled_later_until_success(rig: Rig) -> None:
    rig.fake.set_metadata_script(["WAITING", "UPLOADING", "SUCCESS"])
    rec = rig.queue("a.mp4")
    worker = rig.worker()
    worker.run_once()
    waiting = rig.get(rec)
    assert waiting.state is State.CONFIRMING and waiting.lease_owner is None
    assert waiting.next_attempt_at is not None and waiting.next_attempt_at > rig.clock.now
    assert worker.run_once() is False  # not due yet
    for _ in range(2):
        rig.clock.now = (rig.get(rec).next_attempt_at or 0) + 0.01
        assert worker.run_once() is True
    assert rig.get(rec).state is State.DONE
    assert len(rig.fake.completed) == 1


def test_metadata_failed_uploads_again_with_a_new_asset(rig: Rig) -> None:
    rig.fake.set_metadata_script(["FAILED"], times=1)
    rec = rig.queue("a.mp4")
    worker = rig.worker()
    worker.run_once()
    again = rig.get(rec)
    assert again.state is State.QUEUED and again.asset_id is None and again.attempts == 1
    assert "FAILED" in (again.last_error or "")
    rig.clock.now = (again.next_attempt_at or 0) + 0.01
    worker.run_once()
    done = rig.get(rec)
    assert done.state is State.DONE
    assert len(rig.fake.assets) == 2 and len(rig.fake.completed) == 2


def test_expired_signed_url_is_signed_again(rig: Rig) -> None:
    rig.fake.inject("storage", Fault("expired"))
    rec = rig.queue("a.mp4")
    rig.worker().run_once()
    assert rig.get(rec).state is State.DONE
    assert len(rig.fake.assets) == 2 and len(rig.fake.completed) == 1


def test_storage_rejecting_a_fresh_url_twice_fails_with_its_code(rig: Rig) -> None:
    rig.fake.inject("storage", Fault("xml_error", 403), times=2)
    rec = rig.queue("a.mp4")
    rig.worker().run_once()
    failed = rig.get(rec)
    assert failed.state is State.FAILED
    assert "403" in (failed.last_error or "")


@pytest.mark.parametrize("status", [400, 409, 415])
def test_permanent_api_errors_fail_the_file_with_the_reason(rig: Rig, status: int) -> None:
    rig.fake.inject("sign", Fault("status", status))
    rec = rig.queue("a.mp4")
    rig.worker().run_once()
    failed = rig.get(rec)
    assert failed.state is State.FAILED
    assert str(status) in (failed.last_error or "")


def test_server_error_is_retried_later_with_backoff(rig: Rig) -> None:
    rig.fake.inject("sign", Fault("status", 500))
    rec = rig.queue("a.mp4")
    worker = rig.worker()
    worker.run_once()
    later = rig.get(rec)
    assert later.state is State.QUEUED and later.attempts == 1
    assert "500" in (later.last_error or "")
    assert later.next_attempt_at is not None and later.next_attempt_at >= rig.clock.now + 0.5
    rig.clock.now = later.next_attempt_at + 0.01
    worker.run_once()
    assert rig.get(rec).state is State.DONE


def test_server_errors_give_up_after_the_limit(rig: Rig) -> None:
    rig.fake.inject("sign", Fault("status", 503), times=MAX_SERVER_FAILURES)
    rec = rig.queue("a.mp4")
    worker = rig.worker()
    for _ in range(MAX_SERVER_FAILURES):
        rig.clock.now = (rig.get(rec).next_attempt_at or rig.clock.now) + 0.01
        worker.run_once()
    failed = rig.get(rec)
    assert failed.state is State.FAILED
    reason = rig.journal.history(rec.id)[-1].reason
    assert f"gave up after {MAX_SERVER_FAILURES} server failures" in reason


def test_unreachable_network_never_fails_a_file(rig: Rig, fake: FakeMavi) -> None:
    rec = rig.queue("a.mp4")
    rig.journal.update(rec.id, attempts=MAX_SERVER_FAILURES + 5)
    fake.stop()  # nothing listens on the port any more
    rig.worker().run_once()
    later = rig.get(rec)
    assert later.state is State.QUEUED
    assert "connection failed" in (later.last_error or "")


def test_bad_key_pauses_everything_and_a_probe_resumes(rig: Rig) -> None:
    rig.fake.set_api_key("rotated")
    first = rig.queue("a.mp4")
    second = rig.queue("b.mp4", seed=1)
    worker = rig.worker()
    worker.run_once()
    assert rig.gate.paused()
    pause = rig.journal.pause()
    assert pause is not None and pause.reason.startswith("401")
    assert rig.get(first).state is State.QUEUED and rig.get(first).attempts == 0
    signs = len(rig.fake.calls_to("sign"))
    assert worker.run_once() is False  # no probe before the interval
    assert len(rig.fake.calls_to("sign")) == signs
    rig.fake.set_api_key(API_KEY)
    rig.gate.reset()  # what SIGHUP does
    assert worker.run_once() is True
    assert not rig.gate.paused() and rig.journal.pause() is None
    worker.run_once()
    assert {rig.get(first).state, rig.get(second).state} == {State.DONE}


def test_a_probe_the_confirmer_had_no_poll_for_goes_to_an_upload_worker(rig: Rig) -> None:
    rig.fake.set_api_key("rotated")
    rec = rig.queue("a.mp4")
    uploader = Worker(
        "w1", rig.journal, rig.client, rig.gate, WorkerSettings(), rig.stop,
        clock=rig.clock, work=Work.UPLOADS,
    )  # fmt: skip
    confirmer = Worker(
        "confirmer", rig.journal, rig.client, rig.gate, WorkerSettings(), rig.stop,
        clock=rig.clock, work=Work.CONFIRMATIONS,
    )  # fmt: skip
    uploader.run_once()
    assert rig.gate.paused()
    rig.fake.set_api_key(API_KEY)
    rig.gate.reset()  # SIGHUP: probe at once
    assert confirmer.run_once() is False  # first to ask, with no poll due
    assert uploader.run_once() is True  # the probe was not spent: the key works again
    assert not rig.gate.paused() and rig.get(rec).state is State.DONE


def test_identical_content_becomes_duplicate_without_upload(rig: Rig) -> None:
    original = rig.queue("a.mp4")
    worker = rig.worker()
    worker.run_once()
    copy_path = rig.watch / "copy.mp4"
    copy_path.write_bytes(Path(original.path).read_bytes())
    st = copy_path.stat()
    (copy,) = rig.journal.sight(
        [Observation(str(copy_path), str(rig.watch), st.st_size, st.st_mtime_ns)]
    )
    rig.journal.transition(copy.id, State.QUEUED, "settled")
    worker.run_once()
    dup = rig.get(copy)
    assert dup.state is State.DUPLICATE
    assert dup.duplicate_of == original.id
    assert dup.asset_id == rig.get(original).asset_id
    assert len(rig.fake.completed) == 1


def test_file_changed_since_queued_goes_back_to_settling(rig: Rig) -> None:
    rec = rig.queue("a.mp4")
    with open(rec.path, "ab") as fileobj:
        fileobj.write(b"more")
    rig.worker().run_once()
    again = rig.get(rec)
    assert again.state is State.SETTLING
    assert again.size == (rec.size or 0) + 4
    assert rig.fake.completed == []


def test_file_appended_during_upload_is_uploaded_again(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = rig.queue("a.mp4")
    real_upload = rig.client.upload

    def upload_while_camera_appends(*args: Any, **kwargs: Any) -> None:
        real_upload(*args, **kwargs)
        with open(rec.path, "ab") as fileobj:
            fileobj.write(b"late frames")

    monkeypatch.setattr(rig.client, "upload", upload_while_camera_appends)
    rig.worker().run_once()
    again = rig.get(rec)
    assert again.state is State.SETTLING and again.asset_id is None
    assert "changed during its upload" in rig.journal.history(rec.id)[-1].reason


linux_only = pytest.mark.skipif(sys.platform != "linux", reason="the writer probe needs Linux")


@linux_only
def test_a_queued_file_held_open_for_writing_goes_back_to_settling_unsent(rig: Rig) -> None:
    """Queued by `enqueue` (no settle wait), or re-opened by its writer after settling."""
    rec = rig.queue("a.mp4")
    with held_open(Path(rec.path), "ab") as writer:
        rig.worker(after_upload=AfterUpload.DELETE).run_once()
        row = rig.get(rec)
        assert (row.state, row.last_error) == (State.SETTLING, held_by(writer.pid))
        assert rig.journal.history(rec.id)[-1].reason == held_by(writer.pid)
    assert rig.fake.calls_to("sign") == [] and rig.fake.completed == []
    assert row.sha256 is None and Path(rec.path).exists()


@linux_only
def test_a_writer_that_opens_the_file_before_its_bytes_move_stops_the_upload(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = rig.queue("a.mp4")
    real_sign = rig.client.sign
    writers = contextlib.ExitStack()

    def sign_while_a_writer_opens_it(*args: Any, **kwargs: Any) -> Any:
        writers.enter_context(held_open(Path(rec.path), "r+b"))
        return real_sign(*args, **kwargs)

    monkeypatch.setattr(rig.client, "sign", sign_while_a_writer_opens_it)
    with writers:
        rig.worker().run_once()
        row = rig.get(rec)
    assert row.state is State.SETTLING and row.asset_id is None
    assert row.last_error is not None and row.last_error.startswith("held open for writing by")
    assert rig.fake.completed == [] and not rig.fake.calls_to("storage")


@linux_only
def test_a_file_whose_writer_opened_it_during_the_upload_is_not_done_or_deleted(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = rig.queue("a.mp4")
    real_upload = rig.client.upload
    writers = contextlib.ExitStack()

    def upload_while_a_writer_opens_it(*args: Any, **kwargs: Any) -> None:
        real_upload(*args, **kwargs)
        writers.enter_context(held_open(Path(rec.path), "r+b"))  # no byte written (yet)

    monkeypatch.setattr(rig.client, "upload", upload_while_a_writer_opens_it)
    with writers:
        rig.worker(after_upload=AfterUpload.DELETE).run_once()
        row = rig.get(rec)
    assert row.state is State.SETTLING and row.asset_id is None
    assert row.last_error is not None and row.last_error.startswith("held open for writing by")
    assert Path(rec.path).exists() and not rig.fake.calls_to("metadata")


def test_deleted_file_vanishes_and_empty_file_is_skipped(rig: Rig) -> None:
    gone = rig.queue("gone.mp4")
    os.unlink(gone.path)
    empty = rig.queue("empty.mp4", size=0)
    worker = rig.worker()
    worker.run_once()
    worker.run_once()
    assert rig.get(gone).state is State.VANISHED
    assert rig.get(empty).state is State.SKIPPED
    assert rig.fake.calls == []


def test_resume_after_crash_asks_metadata_before_sending_again(rig: Rig) -> None:
    rec = rig.queue("a.mp4")
    signed = rig.client.sign("a.mp4")
    assert rec.size is not None
    rig.client.upload(signed.url, Path(rec.path), rec.size, "a.mp4")  # landed, then "crash"
    rig.journal.claim("dead", 60)
    rig.journal.transition(
        rec.id, State.UPLOADING, "signed", owner="dead", asset_id=signed.asset_id,
        signed_url=signed.url, url_expires_at=signed.expires_at,
    )  # fmt: skip
    rig.journal.recover_after_crash()
    rig.worker().run_once()
    done = rig.get(rec)
    assert done.state is State.DONE and done.asset_id == signed.asset_id
    assert len(rig.fake.completed) == 1 and len(rig.fake.assets) == 1


def test_resume_reuses_an_unexpired_signed_url(rig: Rig) -> None:
    rec = rig.queue("a.mp4")
    signed = rig.client.sign("a.mp4")
    rig.journal.update(
        rec.id, asset_id=signed.asset_id, signed_url=signed.url, url_expires_at=signed.expires_at
    )
    rig.worker().run_once()
    done = rig.get(rec)
    assert done.state is State.DONE and done.asset_id == signed.asset_id
    assert len(rig.fake.assets) == 1  # no orphan asset from a second sign


def test_after_upload_move_keeps_the_folder_layout(rig: Rig) -> None:
    done_dir = rig.tmp / "uploaded"
    rec = rig.queue("day1/a.mp4")
    content = Path(rec.path).read_bytes()
    rig.worker(after_upload=AfterUpload.MOVE, done_dir=done_dir).run_once()
    assert not Path(rec.path).exists()
    assert (done_dir / "day1" / "a.mp4").read_bytes() == content
    assert "moved to" in rig.journal.history(rec.id)[-1].reason


def test_after_upload_delete_only_after_success(rig: Rig) -> None:
    rig.fake.set_metadata_script(["WAITING", "SUCCESS"])
    rec = rig.queue("a.mp4")
    worker = rig.worker(after_upload=AfterUpload.DELETE)
    worker.run_once()
    assert Path(rec.path).exists()  # confirming: not deleted yet
    rig.clock.now = (rig.get(rec).next_attempt_at or 0) + 0.01
    worker.run_once()
    assert rig.get(rec).state is State.DONE
    assert not Path(rec.path).exists()


def test_a_failed_move_stays_owed_and_a_sweep_finishes_it(rig: Rig) -> None:
    done_dir = rig.tmp / "uploaded"
    done_dir.write_bytes(b"a file where the folder should be")  # mkdir fails, even as root
    rec = rig.queue("a.mp4")
    rig.worker(after_upload=AfterUpload.MOVE, done_dir=done_dir).run_once()
    owed = rig.get(rec)
    assert owed.state is State.DONE and owed.after_upload_due
    assert owed.last_error is not None and "after_upload move failed" in owed.last_error
    assert Path(rec.path).exists()
    done_dir.unlink()
    aftercare = Aftercare(rig.journal, AfterUpload.MOVE, done_dir)
    assert aftercare.sweep(grace_seconds=0.0) == 1
    moved = rig.get(rec)
    assert not moved.after_upload_due and moved.last_error is None
    assert (done_dir / "a.mp4").exists() and not Path(rec.path).exists()
    assert "moved to" in rig.journal.history(rec.id)[-1].reason
    assert aftercare.sweep(grace_seconds=0.0) == 0  # nothing owed any more


def test_keep_owes_nothing_and_a_sweep_under_keep_only_clears(rig: Rig) -> None:
    kept = rig.queue("kept.mp4", seed=1)
    rig.worker().run_once()
    assert not rig.get(kept).after_upload_due
    owed = rig.queue("owed.mp4", seed=2)
    rig.worker().run_once()
    rig.journal.update(owed.id, after_upload_due=1)  # as if killed before a delete
    events = len(rig.journal.history(kept.id))
    # The user switched to keep before restarting: the file stays, the debt is cleared.
    assert Aftercare(rig.journal, AfterUpload.KEEP, None).sweep(grace_seconds=0.0) == 1
    assert not rig.get(owed).after_upload_due and Path(owed.path).exists()
    assert "after_upload is now keep" in rig.journal.history(owed.id)[-1].reason
    assert len(rig.journal.history(kept.id)) == events


@linux_only
def test_after_upload_of_a_file_open_for_writing_stays_owed_until_it_is_closed(
    rig: Rig,
) -> None:
    rec = rig.queue("a.mp4")
    rig.worker().run_once()
    rig.journal.update(rec.id, after_upload_due=1)  # as if finished under after_upload = delete
    aftercare = Aftercare(rig.journal, AfterUpload.DELETE, None)
    with held_open(Path(rec.path), "ab") as writer:
        assert aftercare.sweep(grace_seconds=0.0) == 0
        owed = rig.get(rec)
        why = f"after_upload delete postponed: {held_by(writer.pid)}"
        assert (owed.state, owed.after_upload_due, owed.last_error) == (State.DONE, True, why)
        assert rig.journal.history(rec.id)[-1].reason == why
        assert Path(rec.path).exists()
    assert aftercare.sweep(grace_seconds=0.0) == 1
    assert not rig.get(rec).after_upload_due and rig.get(rec).last_error is None
    assert not Path(rec.path).exists()


def test_a_sweep_leaves_files_a_worker_just_finished_to_that_worker(rig: Rig) -> None:
    rec = rig.queue("a.mp4")
    rig.worker().run_once()
    rig.journal.update(rec.id, after_upload_due=1)
    aftercare = Aftercare(rig.journal, AfterUpload.DELETE, None)
    assert aftercare.sweep() == 0  # within the grace
    assert Path(rec.path).exists()
    rig.clock.now += Timers.sweep_grace + 1
    assert aftercare.sweep() == 1
    assert not Path(rec.path).exists()


def test_a_worker_whose_lease_was_taken_stops_and_leaves_the_row_alone(rig: Rig) -> None:
    """A laptop that slept past the lease: another worker reclaimed the file meanwhile."""
    rec = rig.queue("big.mp4", size=6_000_000)

    def steal() -> None:
        rig.journal.update(rec.id, lease_owner="other-worker")

    ticks = iter(range(0, 10_000, 3))  # the worker's clock: 3 s per look, renewing each chunk
    worker = Worker(
        "w1", rig.journal, rig.client, rig.gate, WorkerSettings(), rig.stop,
        clock=lambda: float(next(ticks)), on_claim=steal,
    )  # fmt: skip
    events = len(rig.journal.history(rec.id))
    assert worker.run_once()
    row = rig.get(rec)
    assert row.state is State.UPLOADING and row.lease_owner == "other-worker"
    assert len(rig.journal.history(rec.id)) == events + 1  # only the claim
    assert rig.fake.completed == [] and rig.fake.assets == {}  # stopped before signing


def test_done_forgets_the_errors_of_earlier_attempts(rig: Rig) -> None:
    rig.fake.inject("storage", Fault("status", 500))
    rec = rig.queue("a.mp4")
    worker = rig.worker()
    worker.run_once()
    assert rig.get(rec).last_error is not None
    rig.clock.now = (rig.get(rec).next_attempt_at or 0) + 0.01
    worker.run_once()
    done = rig.get(rec)
    assert done.state is State.DONE and done.last_error is None
    assert rig.journal.recent_errors() == []


def test_a_version_written_while_confirming_becomes_a_new_generation(rig: Rig) -> None:
    rig.fake.set_metadata_script(["WAITING", "SUCCESS"])
    rec = rig.queue("a.mp4", size=50_000)
    worker = rig.worker()
    worker.run_once()
    assert rig.get(rec).state is State.CONFIRMING
    write_video(Path(rec.path), 70_000, seed=5)  # the editor exports again meanwhile
    rig.journal.sight([Observation(rec.path, str(rig.watch), 70_000, 0)])  # busy row: dropped
    rig.clock.now = (rig.get(rec).next_attempt_at or 0) + 0.01
    worker.run_once()
    assert rig.get(rec).state is State.DONE and rig.get(rec).size == 50_000
    newest = rig.journal.by_path(rec.path)[-1]
    assert newest.id != rec.id and newest.state is State.SETTLING and newest.size == 70_000


class RenameOnFirstChunk(BandwidthLimiter):
    """Renames the file as its first bytes go out: a person tidying the folder mid-upload."""

    def __init__(self, path: Path, to: Path) -> None:
        super().__init__(0)
        self.path, self.to = path, to

    def consume(self, nbytes: int) -> None:
        if self.path.exists():
            self.path.rename(self.to)


def test_a_file_renamed_during_its_upload_is_uploaded_once_not_vanished(rig: Rig) -> None:
    rec = rig.queue("a.mp4", size=3_000_000)
    renamed = rig.watch / "renamed.mp4"
    digest = sha256_of(Path(rec.path))
    Worker(
        "w1", rig.journal, rig.client, rig.gate, WorkerSettings(), rig.stop, clock=rig.clock,
        bandwidth=RenameOnFirstChunk(Path(rec.path), renamed),
    ).run_once()  # fmt: skip
    assert renamed.exists()
    done = rig.get(rec)
    assert done.state is State.DONE, rig.journal.history(rec.id)[-1].reason
    assert [u.sha256 for u in rig.fake.completed] == [digest]


def test_a_resume_check_answered_not_found_sends_the_file_instead_of_failing_it(
    rig: Rig,
) -> None:
    rec = rig.queue("a.mp4")
    signed = rig.client.sign("a.mp4")  # journaled by a run that stopped before any byte
    rig.journal.update(
        rec.id, asset_id=signed.asset_id, signed_url=signed.url, url_expires_at=signed.expires_at
    )
    rig.fake.inject("metadata", Fault("status", 404))  # an asset with no bytes yet
    rig.worker().run_once()
    done = rig.get(rec)
    assert done.state is State.DONE, rig.journal.history(rec.id)[-1].reason
    assert [u.sha256 for u in rig.fake.completed] == [sha256_of(Path(rec.path))]


def test_stop_during_upload_releases_the_file(rig: Rig) -> None:
    rec = rig.queue("big.mp4", size=4_000_000)
    rig.stop.set()
    rig.worker().run_once()
    released = rig.get(rec)
    assert released.state is State.QUEUED and released.lease_owner is None
    assert released.attempts == 0


def test_resume_confirms_instead_of_resending_bytes_mavi_already_holds(rig: Rig) -> None:
    rig.fake.set_metadata_script(["WAITING", "SUCCESS"])
    rec = rig.queue("a.mp4")
    signed = rig.client.sign("a.mp4")
    assert rec.size is not None
    rig.client.upload(signed.url, Path(rec.path), rec.size, "a.mp4")  # landed, then "crash"
    rig.journal.update(
        rec.id, asset_id=signed.asset_id, signed_url=signed.url, url_expires_at=signed.expires_at
    )
    rig.worker().run_once()
    assert rig.get(rec).state is State.DONE
    reasons = [e.reason for e in rig.journal.history(rec.id)]
    assert any("confirming instead of sending again" in r for r in reasons)
    assert len(rig.fake.completed) == 1  # never sent twice
