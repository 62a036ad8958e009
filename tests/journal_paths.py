"""Test set-up that puts a journal row in a given state by allowed moves only
(core/states.ALLOWED): the journal refuses shortcuts such as settling -> done."""

from __future__ import annotations

from typing import Any

from mavi_uploader.core.records import FileRecord
from mavi_uploader.core.states import State
from mavi_uploader.journal import JournalStore

S = State
# The shortest allowed way from a freshly sighted (settling) row to each state.
PATHS: dict[State, tuple[State, ...]] = {
    S.SETTLING: (),
    S.QUEUED: (S.QUEUED,),
    S.UPLOADING: (S.QUEUED, S.UPLOADING),
    S.CONFIRMING: (S.QUEUED, S.UPLOADING, S.CONFIRMING),
    S.DONE: (S.QUEUED, S.UPLOADING, S.CONFIRMING, S.DONE),
    S.DUPLICATE: (S.QUEUED, S.UPLOADING, S.DUPLICATE),
    S.FAILED: (S.QUEUED, S.UPLOADING, S.FAILED),
    S.VANISHED: (S.VANISHED,),
    S.SKIPPED: (S.QUEUED, S.UPLOADING, S.SKIPPED),
}


def drive(
    journal: JournalStore, file_id: int, state: State, why: str = "test", **fields: Any
) -> FileRecord:
    """Move a row from settling, or from a state on the way, to `state`; the last move
    writes `fields` with reason `why`."""
    current = journal.get(file_id)
    assert current is not None
    steps = PATHS[state]
    if current.state in steps:
        steps = steps[steps.index(current.state) + 1 :]
    else:
        assert current.state is State.SETTLING, f"no path from {current.state} to {state}"
    if not steps:
        assert not fields or journal.update(file_id, **fields)
        return journal.get(file_id) or current
    for n, step in enumerate(steps):
        last = n == len(steps) - 1
        moved = journal.transition(
            file_id, step, why if last else f"on the way to {state.value}",
            expect=current.state, **(fields if last else {}),
        )  # fmt: skip
        assert moved is not None, (current.state, step)
        current = moved
    return current
