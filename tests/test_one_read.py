"""One read per upload: a file is hashed from the chunks it sends, unless another file of its
size might be a copy (then it is hashed first, and dedupe stays exact)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from conftest import sha256_of, wait_for, write_video
from fakemavi import FakeMavi, Fault
from mavi_uploader.core.records import FileRecord, Observation, State
from mavi_uploader.upload.hashing import sha256_file
from rig import Rig, make_rig


@pytest.fixture
def rig(tmp_path: Path, fake: FakeMavi) -> Iterator[Rig]:
    yield from make_rig(tmp_path, fake)


@pytest.fixture
def hash_passes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files the worker read to hash before (or apart from) sending them."""
    passes: list[str] = []

    def counted(source: Path | BinaryIO, hook: object = None) -> str:
        passes.append(str(source) if isinstance(source, Path) else str(source.name))
        return sha256_file(source, hook)  # type: ignore[arg-type]

    monkeypatch.setattr("mavi_uploader.upload.worker.sha256_file", counted)
    return passes


def copy_of(rig: Rig, rec: FileRecord, name: str) -> FileRecord:
    path = rig.watch / name
    path.write_bytes(Path(rec.path).read_bytes())
    st = path.stat()
    (seen,) = rig.journal.sight(
        [Observation(str(path), str(rig.watch), st.st_size, st.st_mtime_ns)]
    )
    moved = rig.journal.transition(seen.id, State.QUEUED, "settled")
    assert moved is not None
    return moved


def test_a_file_of_a_new_size_is_read_once_and_journals_the_hash_of_what_was_sent(
    rig: Rig, hash_passes: list[str]
) -> None:
    rec = rig.queue("a.mp4", 3_000_000)
    rig.worker().run_once()
    done = rig.get(rec)
    assert done.state is State.DONE
    assert hash_passes == []  # no pass before the send
    ((sent_sha, sent_size),) = [(u.sha256, u.size) for u in rig.fake.completed]
    assert (done.sha256, done.size) == (sent_sha, sent_size) == (sha_of(rec), 3_000_000)
    why = [e.reason for e in rig.journal.history(rec.id)]
    assert "storage accepted 3000000 bytes" in why


def test_without_dedupe_nothing_is_hashed_before_sending(rig: Rig, hash_passes: list[str]) -> None:
    first = rig.queue("a.mp4", 100_000)
    rig.worker(dedupe=False).run_once()
    copy = copy_of(rig, first, "b.mp4")
    rig.worker(dedupe=False).run_once()
    assert hash_passes == []
    assert rig.get(copy).state is State.DONE and len(rig.fake.completed) == 2
    assert rig.get(copy).sha256 == rig.get(first).sha256


def test_a_file_whose_size_is_known_is_hashed_first_and_a_copy_is_not_sent(
    rig: Rig, hash_passes: list[str]
) -> None:
    first = rig.queue("a.mp4", 200_000)
    rig.worker().run_once()
    assert rig.get(first).state is State.DONE
    copy = copy_of(rig, first, "b.mp4")
    other = rig.queue("c.mp4", 200_000, seed=5)  # the same size, other content
    worker = rig.worker()
    worker.run_once()
    worker.run_once()
    assert hash_passes == [copy.path, other.path]
    duplicate = rig.get(copy)
    assert duplicate.state is State.DUPLICATE and duplicate.duplicate_of == first.id
    assert rig.get(other).state is State.DONE
    assert [u.sha256 for u in rig.fake.completed] == [sha_of(first), sha_of(other)]


def sha_of(rec: FileRecord) -> str:
    return sha256_of(Path(rec.path))


@pytest.mark.parametrize("same_content", [True, False], ids=["copy", "same-size"])
def test_a_file_of_the_size_being_sent_waits_for_that_hash_then_dedupes_exactly(
    rig: Rig, hash_passes: list[str], same_content: bool
) -> None:
    rig.fake.set_metadata_script(["SUCCESS"])
    streamer = rig.queue("a.mp4", 500_000)
    rig.fake.inject("storage", Fault("hold"))  # its send hangs until released
    sending = threading.Thread(target=rig.worker("w1").run_once)
    sending.start()
    try:
        wait_for(lambda: rig.fake.holding == 1, what="the streamer's bytes held by storage")
        late = copy_of(rig, streamer, "b.mp4") if same_content else rig.queue("b.mp4", 500_000, 3)
        other_worker = rig.worker("w2")
        assert other_worker.run_once()  # hashes it, finds the size held: parked
        parked = rig.get(late)
        assert parked.state is State.QUEUED and parked.sha256 == sha_of(late)
        assert f"same content as #{streamer.id}, in flight" in (
            rig.journal.history(late.id)[-1].reason
        )
        assert not other_worker.run_once()  # nothing to claim while it is parked
    finally:
        rig.fake.release_held()
        sending.join(30)
    assert rig.get(streamer).state is State.DONE
    rig.worker("w2").run_once()
    final = rig.get(late)
    if same_content:
        assert final.state is State.DUPLICATE and final.duplicate_of == streamer.id
        assert len(rig.fake.completed) == 1
    else:
        assert final.state is State.DONE and len(rig.fake.completed) == 2
    assert hash_passes == [late.path]  # the streamer itself was read once


def test_a_file_changed_during_its_send_is_sent_again_with_the_new_hash(
    rig: Rig, hash_passes: list[str]
) -> None:
    rec = rig.queue("a.mp4", 400_000)
    rig.fake.inject("storage", Fault("hold"))
    worker = rig.worker()
    sending = threading.Thread(target=worker.run_once)
    sending.start()
    try:
        wait_for(lambda: rig.fake.holding == 1, what="the bytes held by storage")
        write_video(Path(rec.path), 400_000, seed=8)  # re-exported while it was sent
    finally:
        rig.fake.release_held()
        sending.join(30)
    again = rig.get(rec)
    assert again.state is State.SETTLING and again.sha256 is None
    assert hash_passes == []
