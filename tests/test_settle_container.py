"""Settle and containers: a file that holds still but whose container is not whole waits,
saying why; still incomplete after the grace it fails, never uploaded; `retry` checks again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Clock
from containers import ftyp, mp4
from mavi_uploader.core.records import FileRecord, Observation, State
from mavi_uploader.journal import JournalStore, open_journal
from mavi_uploader.service.commands import retry
from mavi_uploader.watch.settle import Settler
from test_settle import FakeProbe

SETTLE, GRACE = 5.0, 60.0


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def journal(tmp_path: Path, clock: Clock) -> Iterator[JournalStore]:
    store = open_journal(tmp_path / "state", clock=clock)
    yield store
    store.close()


def recording(path: Path) -> tuple[bytes, bytes]:
    """(what a camera wrote before its pause: ftyp + mdat, the finished file)."""
    whole = mp4()
    before_moov = whole[: whole.index(b"moov") - 4]
    assert before_moov.startswith(ftyp())
    path.write_bytes(before_moov)
    return before_moov, whole


def sight(journal: JournalStore, path: Path) -> FileRecord:
    st = path.stat()
    (rec,) = journal.sight([Observation(str(path), str(path.parent), st.st_size, st.st_mtime_ns)])
    return rec


def state(journal: JournalStore, rec: FileRecord) -> FileRecord:
    now = journal.get(rec.id)
    assert now is not None
    return now


def settler(journal: JournalStore, clock: Clock, verify: bool = True) -> Settler:
    return Settler(journal, SETTLE, clock=clock, probe=FakeProbe(), verify=verify, grace=GRACE)


def test_an_mp4_without_its_moov_waits_then_goes_once_the_moov_is_written(
    journal: JournalStore, clock: Clock, tmp_path: Path
) -> None:
    clip = tmp_path / "clip.mp4"
    _, whole = recording(clip)
    rec = sight(journal, clip)
    ticks = settler(journal, clock)
    clock.now += SETTLE * 4  # held still far longer than settle_seconds: the camera paused
    assert ticks.tick() == 0
    waiting = state(journal, rec)
    assert waiting.state is State.SETTLING
    assert waiting.last_error == "incomplete: MP4 has no moov box yet"
    clip.write_bytes(whole)  # the camera patches mdat and appends moov
    assert ticks.tick() == 0  # changed: the quiet period starts again
    clock.now += SETTLE
    assert ticks.tick() == 1
    assert state(journal, rec).state is State.QUEUED


def test_still_incomplete_after_the_grace_it_fails_and_retry_checks_it_again(
    journal: JournalStore, clock: Clock, tmp_path: Path
) -> None:
    clip = tmp_path / "truncated.mov"
    _, whole = recording(clip)
    rec = sight(journal, clip)
    ticks = settler(journal, clock)
    clock.now += SETTLE + GRACE - 1
    assert ticks.tick() == 0
    assert state(journal, rec).state is State.SETTLING
    clock.now += 1
    assert ticks.tick() == 0
    failed = state(journal, rec)
    assert (failed.state, failed.last_error) == (
        State.FAILED,
        "incomplete: MOV has no moov box yet",
    )
    assert "never uploaded" in journal.history(rec.id)[-1].reason
    clip.write_bytes(whole)  # fixed by hand; `retry` checks it again
    again = retry(journal, rec.id)
    assert again is not None and again.state is State.SETTLING
    st = clip.stat()
    journal.sight([Observation(str(clip), str(tmp_path), st.st_size, st.st_mtime_ns)])
    clock.now += SETTLE
    ticks.tick()
    clock.now += SETTLE
    assert ticks.tick() == 1
    assert state(journal, rec).state is State.QUEUED


def test_verify_container_off_restores_the_plain_settle_rule(
    journal: JournalStore, clock: Clock, tmp_path: Path
) -> None:
    clip = tmp_path / "clip.mp4"
    recording(clip)
    rec = sight(journal, clip)
    clock.now += SETTLE
    assert settler(journal, clock, verify=False).tick() == 1
    assert state(journal, rec).state is State.QUEUED
