"""The file state machine: states, the moves allowed between them, and named moves (the
columns a kind of move resets). Pure data; every journal store refuses a move not in ALLOWED.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any


class State(str, enum.Enum):
    SETTLING = "settling"
    QUEUED = "queued"
    UPLOADING = "uploading"
    CONFIRMING = "confirming"
    DONE = "done"
    DUPLICATE = "duplicate"
    FAILED = "failed"
    VANISHED = "vanished"
    SKIPPED = "skipped"


S = State
# Rows that may still move on their own; at most one per path (a partial unique index).
ACTIVE_STATES: tuple[State, ...] = (S.SETTLING, S.QUEUED, S.UPLOADING, S.CONFIRMING)
# Claimed by a worker under a lease (a confirming row also sits unleased between polls).
IN_FLIGHT: tuple[State, ...] = (S.UPLOADING, S.CONFIRMING)
# Nothing moves these by itself; only `retry` (failed) or after_upload (same state) does.
FINAL_STATES: tuple[State, ...] = (S.DONE, S.DUPLICATE, S.FAILED, S.VANISHED, S.SKIPPED)
# Final states after which nothing more is sent (failed keeps its URL: `retry` may reuse it);
# retention may delete them.
SETTLED_FOR_GOOD: tuple[State, ...] = (S.DONE, S.DUPLICATE, S.VANISHED, S.SKIPPED)
# Rows in these final states with the same size and mtime mean "already handled": a rescan
# must not upload them again. A vanished row is not among them: the file came back.
HANDLED_STATES: tuple[State, ...] = (S.DONE, S.DUPLICATE, S.FAILED, S.SKIPPED)

# Every move the code makes, from -> to (None: a new row). Same-state moves are listed too:
# they rewrite columns and may append an event (a lease reclaimed, a change of MAVI's answer,
# after_upload carried out).
# fmt: off
ALLOWED: Mapping[State | None, frozenset[State]] = MappingProxyType({
    # sight (settling), enqueue (queued), enqueue of a path no rule accepts (skipped)
    None: frozenset({S.SETTLING, S.QUEUED, S.SKIPPED}),
    # the settle tick (queued, vanished; failed: its container still incomplete after the
    # grace); enqueue (queued)
    S.SETTLING: frozenset({S.QUEUED, S.VANISHED, S.FAILED}),
    # claim (uploading); sighted with another size or mtime (settling)
    S.QUEUED: frozenset({S.UPLOADING, S.SETTLING}),
    # the worker: signed or resumed, or its lease reclaimed (uploading); retry later,
    # released, parked behind a copy, or the crash rule (queued); the file changed
    # (settling); storage took the bytes (confirming); finished (done, duplicate, failed,
    # vanished, skipped)
    S.UPLOADING: frozenset({
        S.UPLOADING, S.QUEUED, S.SETTLING, S.CONFIRMING,
        S.DONE, S.DUPLICATE, S.FAILED, S.VANISHED, S.SKIPPED,
    }),
    # claim or lease reclaim, MAVI's answer changed (confirming); SUCCESS (done); re-sends
    # spent (failed); MAVI will not confirm this asset: send again (queued)
    S.CONFIRMING: frozenset({S.CONFIRMING, S.DONE, S.FAILED, S.QUEUED}),
    # after_upload carried out or postponed (an event, no state change)
    S.DONE: frozenset({S.DONE}),
    S.DUPLICATE: frozenset({S.DUPLICATE}),
    # `retry` (queued; settling: a file failed as incomplete is checked again)
    S.FAILED: frozenset({S.QUEUED, S.SETTLING}),
    S.VANISHED: frozenset(),
    S.SKIPPED: frozenset(),
})
# fmt: on


def is_allowed(old: State | None, new: State) -> bool:
    """May a row in `old` (None: no row yet) be written as `new`?"""
    return new in ALLOWED.get(old, frozenset())


# ---- named moves: the columns each kind of move resets ------------------------------------

# A new asset: the one journaled (and MAVI's answers about it) will not be used again.
NO_ASSET: Mapping[str, Any] = MappingProxyType({
    "asset_id": None,
    "signed_url": None,
    "url_expires_at": None,
    "accepted_at": None,
    "mavi_status": None,
    "mavi_status_since": None,
})  # fmt: skip
# A finished file's signed URL is a credential with no further use: never kept.
SPENT_URL: Mapping[str, Any] = MappingProxyType({"signed_url": None, "url_expires_at": None})
# A row whose file changed (size or mtime) forgets everything that belonged to its old
# content: its asset, hash, bytes sent, twin and complete sends; or new content passes for
# the old (as a duplicate, or as an asset that said SUCCESS).
NEW_VERSION: Mapping[str, Any] = MappingProxyType({
    **NO_ASSET,
    "sha256": None,
    "bytes_sent": 0,
    "duplicate_of": None,
    "sends": 0,
    "content_claimed": 0,
})  # fmt: skip
# Leaving the worker's hands (the in-flight states): no one holds the row any more.
RELEASE_LEASE: Mapping[str, Any] = MappingProxyType({"lease_owner": None, "lease_expires_at": None})
