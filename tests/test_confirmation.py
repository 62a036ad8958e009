"""After storage took the bytes: late answers are waited for, re-sends are capped, copies are
claimed once, and what MAVI says is kept (one `run_once()` at a time, real journal and server)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import API_KEY, sha256_of
from fakemavi import FakeMavi, Fault
from journal_paths import drive
from mavi_uploader.core.decisions import Patience
from mavi_uploader.core.records import FileRecord, Observation, State
from mavi_uploader.core.retry import MAX_SERVER_FAILURES
from mavi_uploader.upload import worker as uploader
from mavi_uploader.upload.hashing import sha256_file
from rig import Rig, make_rig


@pytest.fixture
def rig(tmp_path: Path, fake: FakeMavi) -> Iterator[Rig]:
    yield from make_rig(tmp_path, fake)


def poll_when_due(rig: Rig, rec: FileRecord, worker: uploader.Worker) -> FileRecord:
    rig.clock.now = max(rig.clock.now, (rig.get(rec).next_attempt_at or 0) + 0.01)
    worker.run_once()
    return rig.get(rec)


def test_not_found_right_after_the_upload_is_asked_again_not_sent_again(rig: Rig) -> None:
    rig.fake.set_metadata_script(["WAITING", "SUCCESS"])
    rig.fake.inject("metadata", Fault("status", 404), times=2)
    rec = rig.queue("a.mp4", 2_000_000)
    worker = rig.worker()
    worker.run_once()
    late = rig.get(rec)
    assert late.state is State.CONFIRMING and late.sends == 1
    assert late.mavi_status == "NOT_FOUND"
    for _ in range(3):
        poll_when_due(rig, rec, worker)
    done = rig.get(rec)
    assert done.state is State.DONE, rig.journal.history(rec.id)[-1].reason
    assert len(rig.fake.completed) == 1 and len(rig.fake.assets) == 1  # sent once, one asset
    reasons = [e.reason for e in rig.journal.history(rec.id)]
    assert any("does not know asset" in r for r in reasons)
    assert any(r == "MAVI reports WAITING" for r in reasons)


def test_not_found_beyond_patience_sends_again_and_says_why(rig: Rig) -> None:
    rig.fake.inject("metadata", Fault("status", 404), times=2)
    rec = rig.queue("a.mp4")
    worker = rig.worker(patience=Patience(not_found_seconds=30))
    worker.run_once()
    rig.clock.now += 31
    worker.run_once()
    again = rig.get(rec)
    assert again.state is State.QUEUED and again.asset_id is None
    assert "still does not know asset" in rig.journal.history(rec.id)[-1].reason
    assert again.server_failures == 0  # MAVI answered: not a server failure
    poll_when_due(rig, rec, worker)
    assert rig.get(rec).state is State.DONE
    assert len(rig.fake.completed) == 2


def test_full_resends_are_capped_then_the_file_fails_with_the_reason(rig: Rig) -> None:
    rig.fake.set_metadata_script(["FAILED"])
    rec = rig.queue("a.mp4")
    worker = rig.worker(patience=Patience(max_resends=2))
    for _ in range(6):
        poll_when_due(rig, rec, worker)
    failed = rig.get(rec)
    assert failed.state is State.FAILED
    assert len(rig.fake.completed) == 3  # the first send and two re-sends, never more
    assert "FAILED; gave up after 3 complete uploads (max_resends = 2)" in (failed.last_error or "")


def test_a_size_mismatch_is_sent_again_within_the_cap(rig: Rig) -> None:
    rig.fake.set_metadata_script(["WAITING", "SUCCESS"], times=1)
    rec = rig.queue("a.mp4")
    worker = rig.worker()
    worker.run_once()
    first = rig.get(rec)
    assert first.state is State.CONFIRMING and first.asset_id is not None
    rig.fake.assets[first.asset_id].size += 1  # MAVI ends up holding other bytes
    poll_when_due(rig, rec, worker)
    assert "holds" in rig.journal.history(rec.id)[-1].reason
    poll_when_due(rig, rec, worker)
    assert rig.get(rec).state is State.DONE
    assert len(rig.fake.completed) == 2


def test_network_failures_never_bring_a_file_closer_to_failed(rig: Rig) -> None:
    rec = rig.queue("a.mp4")
    worker = rig.worker()
    rig.client.set_credentials("http://127.0.0.1:9/serve/api/v2", API_KEY)  # nothing listens
    for _ in range(20):
        offline = poll_when_due(rig, rec, worker)
        assert offline.state is State.QUEUED, offline.last_error
    assert offline.attempts == 20 and offline.server_failures == 0
    rig.client.set_credentials(rig.fake.api_base, API_KEY)
    rig.fake.inject("sign", Fault("status", 503))
    after = poll_when_due(rig, rec, worker)
    assert after.state is State.QUEUED, rig.journal.history(rec.id)[-1].reason
    assert after.server_failures == 1 and after.attempts == 21
    assert poll_when_due(rig, rec, worker).state is State.DONE
    assert MAX_SERVER_FAILURES > 1


def test_a_short_lived_url_is_reused_while_it_is_valid_for_the_send(rig: Rig) -> None:
    rig.fake.set_url_ttl(600)  # shorter than any fixed reuse margin used to be
    rig.fake.inject("storage", Fault("status", 500), times=3)
    rec = rig.queue("a.mp4", 200_000)
    worker = rig.worker()
    for _ in range(4):
        poll_when_due(rig, rec, worker)
    assert rig.get(rec).state is State.DONE
    assert len(rig.fake.assets) == 1  # one asset for one file, not one per retry


def test_a_url_about_to_expire_is_not_reused(rig: Rig) -> None:
    rig.fake.set_url_ttl(600)
    rig.fake.inject("storage", Fault("status", 500))
    rec = rig.queue("a.mp4", 200_000)
    worker = rig.worker()
    worker.run_once()
    rig.clock.now += 590  # 10 s left: less than the time to start a send
    worker.run_once()
    assert rig.get(rec).state is State.DONE
    assert len(rig.fake.assets) == 2


def test_a_finished_file_keeps_no_signed_url(rig: Rig) -> None:
    rec = rig.queue("a.mp4")
    rig.worker().run_once()
    done = rig.get(rec)
    assert done.state is State.DONE and done.asset_id is not None
    assert done.signed_url is None and done.url_expires_at is None


def test_copies_are_uploaded_once_when_the_younger_one_hashes_first(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file of the same size already uploaded: any new file of that size is hashed first.
    known = rig.queue("known.mp4", 300_000, seed=9)
    rig.worker().run_once()
    assert rig.get(known).state is State.DONE
    rig.fake.set_metadata_script(["WAITING", "SUCCESS"], times=1)  # the first stays in flight
    older = rig.queue("a.mp4", 300_000)
    copy_path = rig.watch / "copy.mp4"
    copy_path.write_bytes(Path(older.path).read_bytes())
    st = copy_path.stat()
    (younger,) = rig.journal.sight(
        [Observation(str(copy_path), str(rig.watch), st.st_size, st.st_mtime_ns)]
    )
    rig.journal.transition(younger.id, State.QUEUED, "settled")
    hashing_older = threading.Event()
    release_older = threading.Event()

    def held_sha256(path: Path, hook: object) -> str:
        if str(path) == older.path:
            hashing_older.set()
            assert release_older.wait(30)
        return sha256_file(path, hook)  # type: ignore[arg-type]

    monkeypatch.setattr("mavi_uploader.upload.worker.sha256_file", held_sha256)
    first, second = rig.worker(), rig.worker()
    runner = threading.Thread(target=first.run_once)  # claims the older row, hashes slowly
    runner.start()
    assert hashing_older.wait(30)
    second.run_once()  # the younger copy hashes first, claims the content and uploads
    assert rig.get(younger).state is State.CONFIRMING
    release_older.set()
    runner.join(30)
    waiting = rig.get(older)
    assert waiting.state is State.QUEUED
    assert f"same content as #{younger.id}, in flight" in (rig.journal.history(older.id)[-1].reason)
    poll_when_due(rig, younger, second)
    assert rig.get(younger).state is State.DONE
    assert rig.get(older).next_attempt_at is None  # woken: its twin is done
    second.run_once()
    duplicate = rig.get(older)
    assert duplicate.state is State.DUPLICATE and duplicate.duplicate_of == younger.id
    assert [u.sha256 for u in rig.fake.completed][1:] == [sha256_of(copy_path)]


def test_what_mavi_reports_is_kept_with_the_time_it_began(rig: Rig) -> None:
    rig.fake.set_metadata_script(["WAITING", "WAITING", "UPLOADING", "SUCCESS"])
    rec = rig.queue("a.mp4")
    worker = rig.worker()
    worker.run_once()
    first = rig.get(rec)
    assert first.mavi_status == "WAITING" and first.mavi_status_since == rig.clock.now
    since = rig.clock.now
    second = poll_when_due(rig, rec, worker)
    assert second.mavi_status == "WAITING" and second.mavi_status_since == since
    third = poll_when_due(rig, rec, worker)
    assert third.mavi_status == "UPLOADING" and third.mavi_status_since == rig.clock.now
    assert poll_when_due(rig, rec, worker).state is State.DONE
    said = [e.reason for e in rig.journal.history(rec.id) if e.reason.startswith("MAVI reports")]
    assert said == ["MAVI reports WAITING", "MAVI reports UPLOADING"]


def test_bytes_that_landed_before_a_stop_are_not_sent_again_when_the_url_is_too_old(
    rig: Rig,
) -> None:
    rig.fake.set_metadata_script(["WAITING", "SUCCESS"])
    rec = rig.queue("a.mp4")
    signed = rig.client.sign("a.mp4")
    assert rec.size is not None
    rig.client.upload(signed.url, Path(rec.path), rec.size, "a.mp4")  # landed, then a kill
    rig.journal.update(
        rec.id, asset_id=signed.asset_id, signed_url=signed.url, url_expires_at=rig.clock.now + 5
    )
    rig.worker().run_once()
    poll_when_due(rig, rec, rig.worker())
    assert rig.get(rec).state is State.DONE
    assert len(rig.fake.completed) == 1 and len(rig.fake.assets) == 1


def test_copies_of_content_mavi_keeps_refusing_cost_no_more_sends_than_one_file(
    rig: Rig,
) -> None:
    rig.fake.set_metadata_script(["FAILED"])
    first = rig.queue("a.mp4")
    copies = [first]
    for name in ("b.mp4", "c.mp4"):
        path = rig.watch / name
        path.write_bytes(Path(first.path).read_bytes())
        st = path.stat()
        (rec,) = rig.journal.sight(
            [Observation(str(path), str(rig.watch), st.st_size, st.st_mtime_ns)]
        )
        drive(rig.journal, rec.id, State.QUEUED, "settled")
        copies.append(rec)
    workers = [rig.worker(patience=Patience(max_resends=1)) for _ in range(2)]
    for _ in range(20):  # two workers taking turns; every backoff is over by the next turn
        rig.clock.now += 120
        for worker in workers:
            worker.run_once()
    assert {rig.get(r).state for r in copies} == {State.FAILED}
    assert len(rig.fake.completed) == 2  # the first send and one re-send, for all three
    reasons = [rig.get(r).last_error or "" for r in copies[1:]]
    assert all("which MAVI did not take after 2 complete uploads" in r for r in reasons)
