"""The state machine as data: the ALLOWED table, the state groups and the named moves."""

from __future__ import annotations

import pytest

from mavi_uploader.core import records
from mavi_uploader.core.states import (
    ACTIVE_STATES,
    ALLOWED,
    FINAL_STATES,
    HANDLED_STATES,
    IN_FLIGHT,
    NEW_VERSION,
    NO_ASSET,
    RELEASE_LEASE,
    SETTLED_FOR_GOOD,
    SPENT_URL,
    State,
    is_allowed,
)

S = State


def reachable(start: State | None) -> set[State]:
    seen: set[State] = set()
    todo = list(ALLOWED[start])
    while todo:
        state = todo.pop()
        if state not in seen:
            seen.add(state)
            todo.extend(ALLOWED[state])
    return seen


def test_the_table_names_every_state_once_and_nothing_else() -> None:
    assert set(ALLOWED) == {None, *State}
    assert all(targets <= set(State) for targets in ALLOWED.values())


def test_a_new_row_starts_settling_queued_or_skipped() -> None:
    assert ALLOWED[None] == {S.SETTLING, S.QUEUED, S.SKIPPED}


def test_every_state_can_be_reached_and_every_active_state_can_finish() -> None:
    assert reachable(None) == set(State)
    for state in ACTIVE_STATES:
        assert reachable(state) & set(FINAL_STATES), state


def test_final_states_only_stay_put_or_are_retried() -> None:
    for state in FINAL_STATES:
        assert ALLOWED[state] <= {state, S.QUEUED, S.SETTLING}, state
    # `retry`, and nothing else: queued, or settling for a file failed as incomplete (its
    # container is checked again)
    assert ALLOWED[S.FAILED] == {S.QUEUED, S.SETTLING}
    assert {s for s in FINAL_STATES if S.SETTLING in ALLOWED[s]} == {S.FAILED}
    assert ALLOWED[S.VANISHED] == ALLOWED[S.SKIPPED] == frozenset()


def test_only_a_worker_uploads_or_confirms() -> None:
    """uploading is entered from a claim only; confirming only after storage took bytes."""
    assert {s for s in ALLOWED if s is not None and S.UPLOADING in ALLOWED[s]} == {
        S.QUEUED,
        S.UPLOADING,
    }
    assert {s for s in ALLOWED if s is not None and S.CONFIRMING in ALLOWED[s]} == set(IN_FLIGHT)
    assert not any(S.DONE in ALLOWED[s] for s in (None, S.SETTLING, S.QUEUED))


@pytest.mark.parametrize(
    ("old", "new", "allowed"),
    [
        (None, S.SETTLING, True),
        (None, S.DONE, False),
        (S.SETTLING, S.QUEUED, True),
        (S.SETTLING, S.DONE, False),
        (S.QUEUED, S.SETTLING, True),
        (S.QUEUED, S.FAILED, False),
        (S.UPLOADING, S.UPLOADING, True),
        (S.UPLOADING, S.QUEUED, True),
        (S.CONFIRMING, S.SETTLING, False),
        (S.CONFIRMING, S.UPLOADING, False),
        (S.DONE, S.DONE, True),
        (S.DONE, S.QUEUED, False),
        (S.FAILED, S.QUEUED, True),
        (S.FAILED, S.FAILED, False),
        (S.VANISHED, S.SETTLING, False),
    ],
)
def test_is_allowed(old: State | None, new: State, allowed: bool) -> None:
    assert is_allowed(old, new) is allowed


def test_the_groups_partition_the_states() -> None:
    assert set(ACTIVE_STATES) | set(FINAL_STATES) == set(State)
    assert not set(ACTIVE_STATES) & set(FINAL_STATES)
    assert set(IN_FLIGHT) < set(ACTIVE_STATES)
    assert set(SETTLED_FOR_GOOD) | {S.FAILED} == set(FINAL_STATES)
    assert set(HANDLED_STATES) == set(FINAL_STATES) - {S.VANISHED}


def test_named_moves_nest_and_cannot_be_changed() -> None:
    assert set(SPENT_URL) < set(NO_ASSET) < set(NEW_VERSION)
    assert set(RELEASE_LEASE) == {"lease_owner", "lease_expires_at"}
    assert NEW_VERSION["bytes_sent"] == 0 and NEW_VERSION["sends"] == 0
    assert all(value is None for value in NO_ASSET.values())
    with pytest.raises(TypeError):
        NEW_VERSION["sha256"] = "x"  # type: ignore[index]


def test_records_still_export_the_state_machine() -> None:
    assert records.State is State
    assert records.NEW_VERSION is NEW_VERSION and records.ACTIVE_STATES is ACTIVE_STATES
