"""Contract: the content claim (dedupe) and parked copies."""

from __future__ import annotations

from contract.helpers import current, drive, queued
from mavi_uploader.core.states import NEW_VERSION, State
from mavi_uploader.journal import ContentClaim, JournalStore, SizeClaim


def test_content_is_claimed_once_whichever_copy_hashes_first(store: JournalStore) -> None:
    older, younger = queued(store, "/w/a.mp4"), queued(store, "/w/b.mp4")
    first = store.claim("w1", 60)
    second = store.claim("w2", 60)
    assert first is not None and second is not None and first.id == older
    assert store.claim_content(younger, "ab" * 32, "w2", max_sends=3) == (
        ContentClaim.CLAIMED,
        None,
    )
    claimed = current(store, younger)
    assert claimed.sha256 == "ab" * 32 and claimed.content_claimed
    claim, twin = store.claim_content(older, "ab" * 32, "w1", max_sends=3)
    assert claim is ContentClaim.IN_FLIGHT and twin is not None and twin.id == younger
    assert (
        store.claim_content(older, "ab" * 32, "someone-else", max_sends=3)[0]
        is ContentClaim.IN_FLIGHT
    )
    drive(store, younger, State.DONE, "confirmed")
    claim, twin = store.claim_content(older, "ab" * 32, "w1", max_sends=3)
    assert claim is ContentClaim.UPLOADED and twin is not None and twin.id == younger


def test_a_holder_waiting_to_retry_keeps_its_content_until_it_finishes(
    store: JournalStore,
) -> None:
    holder, copy = queued(store, "/w/a.mp4"), queued(store, "/w/b.mp4")
    assert store.claim("w1", 60) is not None and store.claim("w2", 60) is not None
    assert store.claim_content(holder, "cd" * 32, "w1", max_sends=3)[0] is ContentClaim.CLAIMED
    # A 5xx or a re-send sends the holder back to queued: it still holds the content, so
    # its copies do not start a count of complete uploads of their own.
    store.transition(holder, State.QUEUED, "storage 500; retry", owner="w1", lease_owner=None)
    assert store.claim_content(copy, "cd" * 32, "w2", max_sends=3)[0] is ContentClaim.IN_FLIGHT
    again = store.claim("w1", 60)
    assert again is not None and again.id == holder and again.content_claimed
    assert store.claim_content(holder, "cd" * 32, "w1", max_sends=3)[0] is ContentClaim.CLAIMED
    # Its file changed: the new version holds nothing, and a copy may claim the content.
    store.transition(holder, State.SETTLING, "changed", **NEW_VERSION)
    assert store.claim_content(copy, "cd" * 32, "w2", max_sends=3)[0] is ContentClaim.CLAIMED


def test_a_content_claim_needs_the_lease(store: JournalStore) -> None:
    file_id = queued(store, "/w/a.mp4")
    assert store.claim("w1", 60) is not None
    assert store.claim_content(file_id, "ef" * 32, "w2", max_sends=3) == (ContentClaim.LOST, None)
    assert current(store, file_id).sha256 is None


def test_a_copy_of_content_mavi_refused_too_often_is_not_sent_again(store: JournalStore) -> None:
    spent, copy = queued(store, "/w/a.mp4"), queued(store, "/w/b.mp4")
    drive(store, spent, State.FAILED, "MAVI said FAILED 4 times", sha256="ab" * 32, sends=4)
    assert store.claim("w1", 60) is not None
    claim, twin = store.claim_content(copy, "ab" * 32, "w1", max_sends=3)
    assert claim is ContentClaim.SPENT and twin is not None and twin.id == spent
    assert store.claim_content(copy, "ab" * 32, "w1", max_sends=4)[0] is ContentClaim.CLAIMED


def test_a_done_twin_wins_over_one_in_flight(store: JournalStore) -> None:
    done, flying, copy = (queued(store, f"/w/{n}.mp4") for n in "abc")
    drive(store, done, State.DONE, "confirmed", sha256="ab" * 32)
    store.claim("w0", 60)  # takes `flying` (done is not queued any more)
    assert store.claim_content(flying, "ab" * 32, "w0", max_sends=3)[0] is ContentClaim.UPLOADED
    store.update(flying, sha256="ab" * 32, content_claimed=1)
    store.claim("w1", 60)
    claim, twin = store.claim_content(copy, "ab" * 32, "w1", max_sends=3)
    assert claim is ContentClaim.UPLOADED and twin is not None and twin.id == done


def test_other_content_is_no_twin(store: JournalStore) -> None:
    other, mine = queued(store, "/w/a.mp4"), queued(store, "/w/b.mp4")
    drive(store, other, State.DONE, "confirmed", sha256="00" * 32)
    store.claim("w1", 60)
    assert store.claim_content(mine, "11" * 32, "w1", max_sends=3) == (ContentClaim.CLAIMED, None)


def test_a_copy_waiting_for_its_twin_is_parked_until_the_twin_leaves_flight(
    store: JournalStore,
) -> None:
    twin, copy = queued(store, "/w/a.mp4"), queued(store, "/w/b.mp4")
    assert store.claim("w1", 60) is not None
    store.claim_content(twin, "ab" * 32, "w1", max_sends=3)
    store.update(copy, sha256="ab" * 32)  # hashed, found the twin in flight, queued
    assert store.claim("w2", 60) is None  # parked: not claimed, not due
    assert store.next_due_at() is None
    store.transition(
        twin, State.CONFIRMING, "storage took it", lease_owner=None, next_attempt_at=9e9
    )
    assert store.claim("w2", 60) is None  # still in flight
    assert not store.has_work_besides_confirming()  # run --once may stop waiting
    store.transition(twin, State.DONE, "confirmed")
    woken = store.claim("w2", 60)
    assert woken is not None and woken.id == copy


# ---- the size claim: a file no other file's size matches is hashed from what it sends ------


def test_a_size_no_other_file_has_is_claimed_and_holds_every_content_of_that_size(
    store: JournalStore,
) -> None:
    streamer, copy = queued(store, "/w/a.mp4", size=500), queued(store, "/w/b.mp4", size=500)
    assert store.claim("w1", 60) is not None
    assert store.claim_size(streamer, 500, "w1") is SizeClaim.CLAIMED
    held = current(store, streamer)
    assert held.content_claimed and held.sha256 is None
    assert store.claim("w2", 60) is not None  # the copy
    assert store.claim_size(copy, 500, "w2") is SizeClaim.TAKEN  # so it hashes first
    claim, twin = store.claim_content(copy, "ab" * 32, "w2", max_sends=3)
    assert claim is ContentClaim.IN_FLIGHT and twin is not None and twin.id == streamer


def test_a_size_claim_gives_way_to_any_file_that_might_be_a_copy(store: JournalStore) -> None:
    done, hashing, mine = (queued(store, f"/w/{n}.mp4", size=700) for n in "abc")
    drive(store, done, State.DONE, "confirmed", sha256="00" * 32)
    assert store.claim("w1", 60) is not None  # `hashing`: uploading, its hash not known yet
    assert store.claim("w2", 60) is not None  # mine
    assert store.claim_size(mine, 700, "w2") is SizeClaim.TAKEN  # `done` has that size
    store.update(done, size=1)  # (as if it were another size)
    assert store.claim_size(mine, 700, "w2") is SizeClaim.TAKEN  # `hashing` has it too
    assert store.claim_size(mine, 701, "w2") is SizeClaim.CLAIMED  # nobody has that size
    assert store.claim_size(hashing, 999, "w2") is SizeClaim.LOST  # not w2's row
    assert current(store, hashing).content_claimed is False


def test_other_content_of_the_same_size_waits_only_until_the_streamer_knows_its_hash(
    store: JournalStore,
) -> None:
    streamer, other = queued(store, "/w/a.mp4", size=500), queued(store, "/w/b.mp4", size=500)
    assert store.claim("w1", 60) is not None
    assert store.claim_size(streamer, 500, "w1") is SizeClaim.CLAIMED
    assert store.claim("w2", 60) is not None
    assert store.claim_content(other, "cd" * 32, "w2", max_sends=3)[0] is ContentClaim.IN_FLIGHT
    store.transition(other, State.QUEUED, "waiting for #1", owner="w2", lease_owner=None,
                     sha256="cd" * 32)  # fmt: skip
    assert store.claim("w2", 60) is None  # parked behind the size claim
    # The streamer's send ends: its hash is known and it is another content.
    store.transition(streamer, State.CONFIRMING, "storage took it", owner="w1",
                     lease_owner=None, next_attempt_at=9e9, sha256="ab" * 32)  # fmt: skip
    woken = store.claim("w2", 60)
    assert woken is not None and woken.id == other
    assert store.claim_content(other, "cd" * 32, "w2", max_sends=3)[0] is ContentClaim.CLAIMED


def test_a_finished_row_without_a_hash_is_no_twin_of_anything(store: JournalStore) -> None:
    # Never taken for a copy of whatever has its size (rows of older versions, a stop).
    old, mine = queued(store, "/w/a.mp4", size=500), queued(store, "/w/b.mp4", size=500)
    drive(store, old, State.DONE, "confirmed")
    assert current(store, old).sha256 is None
    assert store.claim("w1", 60) is not None
    assert store.claim_content(mine, "ab" * 32, "w1", max_sends=3) == (ContentClaim.CLAIMED, None)
