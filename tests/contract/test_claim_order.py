"""Contract: the order of claims (config `upload_order`, journal/sql.py `claim_order`).

Every store takes the same row: fifo by first sighting, newest by mtime, smallest by size;
rows not yet due never, due retries in the order, confirmation polls after uploads, and under
newest and smallest an upload due for ORDER_PATIENCE goes ahead of the rest.
"""

from __future__ import annotations

import pytest

from conftest import Clock
from contract.helpers import drive, sighted
from mavi_uploader.config.model import UploadOrder
from mavi_uploader.core.states import State
from mavi_uploader.journal import JournalStore
from mavi_uploader.journal.sql import ORDER_PATIENCE

FIFO, NEWEST, SMALLEST = UploadOrder.FIFO, UploadOrder.NEWEST, UploadOrder.SMALLEST
SECOND = 1_000_000_000  # mtime_ns
LEASE = 10**6  # no lease runs out while a test moves the clock by hours


def queued(store: JournalStore, name: str, size: int, mtime_s: int = 1) -> int:
    file_id = sighted(store, f"/w/{name}.mp4", size, mtime_s * SECOND)
    drive(store, file_id, State.QUEUED, "settled")
    return file_id


def drain(store: JournalStore, order: UploadOrder) -> list[int]:
    """Every row claimable now, in the order claims hand them out."""
    taken: list[int] = []
    while (rec := store.claim(f"w{len(taken)}", LEASE, order=order)) is not None:
        taken.append(rec.id)
    return taken


def three(store: JournalStore) -> tuple[int, int, int]:
    """Seen in this order: large and middle-aged, small and oldest, medium and newest."""
    large = queued(store, "large", 3000, mtime_s=200)
    small = queued(store, "small", 1000, mtime_s=100)
    medium = queued(store, "medium", 2000, mtime_s=300)
    return large, small, medium


def test_fifo_is_the_order_first_seen_and_the_default(store: JournalStore) -> None:
    large, small, medium = three(store)
    assert drain(store, FIFO) == [large, small, medium]
    store.recover_after_crash()  # all three queued again, as after a restart
    first = store.claim("w", LEASE)  # no order given: fifo
    assert first is not None and first.id == large


def test_smallest_takes_the_smallest_first(store: JournalStore) -> None:
    large, small, medium = three(store)
    assert drain(store, SMALLEST) == [small, medium, large]


def test_newest_takes_the_most_recently_modified_first(store: JournalStore) -> None:
    large, small, medium = three(store)
    assert drain(store, NEWEST) == [medium, large, small]


@pytest.mark.parametrize("order", [SMALLEST, NEWEST])
def test_ties_go_first_seen_first(store: JournalStore, order: UploadOrder) -> None:
    ids = [queued(store, f"same-{n}", 500, mtime_s=7) for n in range(4)]
    assert drain(store, order) == ids


@pytest.mark.parametrize("order", list(UploadOrder))
def test_a_row_not_yet_due_is_never_claimed_in_any_order(
    store: JournalStore, clock: Clock, order: UploadOrder
) -> None:
    # The smallest, newest and first seen at once: first in every order, were it due.
    waiting = queued(store, "waiting", 1, mtime_s=999)
    store.update(waiting, next_attempt_at=clock.now + 30)
    other = queued(store, "other", 5000, mtime_s=1)
    assert drain(store, order) == [other]
    clock.now += 29.9
    assert store.claim("w", LEASE, order=order) is None
    clock.now += 0.2
    assert drain(store, order) == [waiting]


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        (FIFO, ["retried", "fresh"]),
        (SMALLEST, ["retried", "fresh"]),
        (NEWEST, ["fresh", "retried"]),
    ],
)
def test_a_due_retry_takes_its_place_in_the_order(
    store: JournalStore, clock: Clock, order: UploadOrder, expected: list[str]
) -> None:
    """Not behind every first attempt: a small file that failed once must not wait for a
    large one to be sent under `smallest`."""
    ids = {"retried": queued(store, "retried", 100, mtime_s=1)}
    store.update(ids["retried"], next_attempt_at=clock.now + 10)
    ids["fresh"] = queued(store, "fresh", 9000, mtime_s=2)
    clock.now += 11
    assert drain(store, order) == [ids[name] for name in expected]


@pytest.mark.parametrize("order", list(UploadOrder))
def test_due_confirmation_polls_come_before_uploads_in_the_order_they_came_due(
    store: JournalStore, clock: Clock, order: UploadOrder
) -> None:
    polls = []
    for n, due_in in enumerate((5, 2)):
        poll = queued(store, f"sent-{n}", 1, mtime_s=999)
        store.claim("w", LEASE, order=order)
        store.transition(
            poll, State.CONFIRMING, "sent", owner="w", lease_owner=None,
            next_attempt_at=clock.now + due_in,
        )  # fmt: skip
        polls.append(poll)
    upload = queued(store, "upload", 9000, mtime_s=1)
    clock.now += 6
    assert drain(store, order) == [polls[1], polls[0], upload]


@pytest.mark.parametrize("order", [SMALLEST, NEWEST])
def test_an_upload_due_for_the_patience_goes_ahead_of_newer_arrivals(
    store: JournalStore, clock: Clock, order: UploadOrder
) -> None:
    """A steady stream of small (or new) files holds a large (or old) one back only so
    long: then it goes first."""
    held_back = queued(store, "held-back", 10**9, mtime_s=1)
    for n in range(3):
        clock.now += ORDER_PATIENCE / 4
        arrival = queued(store, f"arrival-{n}", 10 + n, mtime_s=1000 + n)
        first = store.claim("w", LEASE, order=order)
        assert first is not None and first.id == arrival  # overtaken while it is young
    clock.now += ORDER_PATIENCE / 4
    queued(store, "one-more", 5, mtime_s=2000)
    first = store.claim("w", LEASE, order=order)
    assert first is not None and first.id == held_back


def test_overdue_uploads_go_first_seen_first(store: JournalStore, clock: Clock) -> None:
    first = queued(store, "first", 9000, mtime_s=1)
    second = queued(store, "second", 8000, mtime_s=2)
    clock.now += ORDER_PATIENCE
    fresh = queued(store, "fresh", 1, mtime_s=3)
    assert drain(store, SMALLEST) == [first, second, fresh]


def test_a_retry_waits_from_when_it_came_due_not_from_when_it_failed(
    store: JournalStore, clock: Clock
) -> None:
    large = queued(store, "large", 9000)
    store.update(large, next_attempt_at=clock.now + 600)  # failed now, due in 10 minutes
    clock.now += ORDER_PATIENCE + 300  # queued for longer, but due for less than that
    small = queued(store, "small", 1)
    taken = store.claim("w", LEASE, order=SMALLEST)
    assert taken is not None and taken.id == small
    clock.now += 300  # due for the whole patience now
    queued(store, "another-small", 1)
    taken = store.claim("w", LEASE, order=SMALLEST)
    assert taken is not None and taken.id == large
