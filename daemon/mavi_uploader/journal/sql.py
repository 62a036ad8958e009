"""What both stores' SQL shares: state literals and the row rules written as SQL fragments.

The fragments are plain SQL both SQLite and PostgreSQL read the same way; each store keeps its
own statements (placeholders, locking and types differ) and uses these for the rules, so a
rule is written once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mavi_uploader.config.model import UploadOrder
from mavi_uploader.core.handoffs import Handoff, HandoffEnd, HandoffKind
from mavi_uploader.core.records import EMPTY_FILE
from mavi_uploader.core.states import ACTIVE_STATES, HANDLED_STATES, State
from mavi_uploader.journal.api import Work


def one(state: State) -> str:
    """A state as an SQL literal (the enum's own value: a constant, never input)."""
    return f"'{state.value}'"


def among(states: Iterable[State]) -> str:
    """States as an SQL list for `IN`: literals, so SQLite can match the partial index."""
    return "(" + ", ".join(one(s) for s in states) + ")"


# A skip is final only when it judged the file itself (0 bytes): that verdict holds while the
# file keeps its size and mtime. Every other skip applied a rule of the config of its day
# (`enqueue` of a path outside every watch folder, an extension not listed, an ignore glob...).
# The watcher sights only files the current rules accept, so such a row must not stop a file
# it sights: the config has changed since (start, SIGHUP and rescans all go through here).
CONTENT_SKIPS = (EMPTY_FILE,)


def handles(state: str, last_error: str | None) -> bool:
    """Does a final row (`state` as stored) settle the same version of its file for good?"""
    if state == State.SKIPPED.value:
        return last_error in CONTENT_SKIPS
    return state in {s.value for s in HANDLED_STATES}


# A row holding some content for upload: it claimed it (claim_content) and keeps it through
# retries and re-sends (queued, uploading, confirming) until it finishes or its file changes,
# so copies wait for it and one content's complete uploads are counted on one row. `unless`:
# a store's further condition on `twin` (a fleet: not held by a host gone silent).
def holds(unless: str = "") -> str:
    extra = f" AND NOT {unless}" if unless else ""
    return f"(twin.state IN {among(ACTIVE_STATES)} AND twin.content_claimed = 1{extra})"


# A row sending a file whose hash is not known yet (hashed from the chunks it sends, so the
# file is read once) holds every content of its size until its hash is known: a copy can only
# be the same size. So `twin` may have the content of hash `sha256` and size `size` if it has
# that hash, or holds content with no hash yet and has that size (never a finished row
# without a hash: it would be taken for a copy of anything its size).
def same_content(sha256: str, size: str, unless: str = "") -> str:
    return (
        f"(twin.sha256 = {sha256}"
        f" OR (twin.sha256 IS NULL AND twin.size = {size} AND {holds(unless)}))"
    )


# A queued copy whose content another row holds is parked: no worker claims it (no event, no
# timer) until that row leaves flight, when it is due at once.
def parked(unless: str = "") -> str:
    return (
        "(files.sha256 IS NOT NULL AND EXISTS (SELECT 1 FROM files AS twin"
        f" WHERE {same_content('files.sha256', 'files.size', unless)} AND twin.id != files.id"
        f" AND {holds(unless)}))"
    )


# Might another row share the content of a file of this size (`twin.size` already matched)?
# A row with a hash (done, duplicate, failed or queued after hashing), one holding content,
# or one being hashed or sent now. Then the file is hashed before it is sent, as dedupe needs.
def size_taken(unless: str = "") -> str:
    return f"(twin.sha256 IS NOT NULL OR twin.state = {one(State.UPLOADING)} OR {holds(unless)})"


HOLDS = holds()
PARKED = parked()
SIZE_TAKEN = size_taken()


# ---- the order of claims (config `upload_order`) --------------------------------------------
#
# A claim takes one due row: a queued file (next_attempt_at unset or past, not parked), an
# upload or confirmation whose lease expired, or a confirmation poll that is due. A row not
# yet due is never a candidate, whatever the order. Among the candidates:
#
# 1. Due confirmation polls (and confirmations whose lease expired) before uploads, in the
#    order they came due (next_attempt_at): a poll is one quick call that may finish a file,
#    and must not wait behind uploads that take hours. (The daemon's confirmer claims polls
#    only and its upload workers uploads only; this order serves a worker that takes both.)
# 2. Uploads (first attempts and due retries alike, so a retried small file does not wait
#    behind a large one under `smallest`) in the configured order:
#    - fifo: first seen, first sent (id).
#    - newest: the most recently modified file (mtime) first, ties first seen first. mtime,
#      not the time it was queued: an export just rendered is the newest file, while copies
#      that keep their mtime (Finder, cp -p, rsync -a, camera offload tools) bring old
#      material that should not overtake it, and a restart's rescan queues files in directory
#      order, which says nothing about which is new.
#    - smallest: the smallest file first, ties first seen first.
# 3. Under newest and smallest, an upload due for ORDER_PATIENCE or longer goes ahead of the
#    others (such rows first seen, first sent): a steady stream of small (or new) files would
#    otherwise hold a large (or old) one back for ever. Due since: its next_attempt_at, else
#    when it was last queued (updated_at: nothing rewrites a queued row but the move that
#    queued it, which also clears next_attempt_at). fifo needs no such rule: a row is only
#    ever overtaken by rows seen before it.
ORDER_PATIENCE = 3600.0

_POLL = f"state = {one(State.CONFIRMING)}"
_ORDER_KEYS = {
    UploadOrder.FIFO: "",
    UploadOrder.NEWEST: "-COALESCE(mtime_ns, 0)",
    UploadOrder.SMALLEST: "COALESCE(size, 0)",
}


def claimable(work: Work, *, now: str, parked: str, lapsed: str) -> str:
    """The rows a claim of `work` may take: `now` is the statement's placeholder for the
    journal's now, `parked` the store's PARKED, `lapsed` its "this row's lease has lapsed"."""
    due = f"COALESCE(next_attempt_at, 0) <= {now}"
    uploads = (
        f"(state = {one(State.QUEUED)} AND {due} AND NOT {parked})"
        f" OR (state = {one(State.UPLOADING)} AND {lapsed})"
    )
    polls = f"(state = {one(State.CONFIRMING)} AND (lease_owner IS NULL AND {due} OR {lapsed}))"
    chosen = {Work.UPLOADS: uploads, Work.CONFIRMATIONS: polls}.get(work, f"{uploads} OR {polls}")
    return f"({chosen})"


def claim_order(order: UploadOrder, overdue_before: str) -> str:
    """The ORDER BY of a claim under `order`; `overdue_before` is the statement's placeholder
    for the journal's now minus ORDER_PATIENCE."""
    terms = [f"NOT ({_POLL})", f"CASE WHEN {_POLL} THEN COALESCE(next_attempt_at, 0) ELSE 0 END"]
    key = _ORDER_KEYS[order]
    if key:
        overdue = f"COALESCE(next_attempt_at, updated_at) <= {overdue_before}"
        terms += [
            f"CASE WHEN {overdue} THEN 0 ELSE 1 END",
            f"CASE WHEN {overdue} THEN 0 ELSE {key} END",
        ]
    return "ORDER BY " + ", ".join([*terms, "id"])


# ---- the hand-off outbox (table `handoffs`) --------------------------------------------------
#
# A hand-off is owed until it is delivered or dropped. A claim takes an owed one that is due
# (next_attempt_at unset or past) and not leased, or whose lease lapsed (its runner died or hung:
# at-least-once), and never one while an earlier hand-off of the same kind for the same file is
# still owed: the receiver hears a file's events in order.
OWED = "(h.delivered_at IS NULL AND h.dropped_at IS NULL)"
# Files with a hand-off owed: retention keeps them (the hand-off needs its file's row).
OWING_FILES = (
    "(SELECT h.file_id FROM handoffs AS h WHERE h.delivered_at IS NULL AND h.dropped_at IS NULL)"
)


def handoff_due(*, now: str, kinds: str) -> str:
    """The hand-offs a claim may take: `now` is the statement's placeholder for the journal's
    now, `kinds` its list of the kinds this runner delivers."""
    return (
        f"({OWED} AND h.kind IN {kinds} AND COALESCE(h.next_attempt_at, 0) <= {now}"
        f" AND (h.lease_owner IS NULL OR h.lease_expires_at < {now})"
        " AND NOT EXISTS (SELECT 1 FROM handoffs AS e WHERE e.file_id = h.file_id"
        " AND e.kind = h.kind AND e.id < h.id"
        " AND e.delivered_at IS NULL AND e.dropped_at IS NULL))"
    )


# Failing ones first (`status` shows what needs a look), then the oldest.
HANDOFF_ORDER = "ORDER BY h.attempts = 0, COALESCE(h.next_attempt_at, h.created_at), h.id"
CLAIM_HANDOFF_ORDER = "ORDER BY COALESCE(h.next_attempt_at, h.created_at), h.id"


def kinds_literal(kinds: Iterable[HandoffKind]) -> str:
    """Kinds as an SQL list for `IN` (the enum's own values: constants, never input)."""
    return "(" + ", ".join(f"'{k.value}'" for k in kinds) + ")"


def to_handoff(row: Mapping[str, Any]) -> Handoff:
    return Handoff(
        id=row["id"],
        file_id=row["file_id"],
        kind=HandoffKind(row["kind"]),
        event=row["event"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        lease_owner=row["lease_owner"],
        lease_expires_at=row["lease_expires_at"],
        delivered_at=row["delivered_at"],
        dropped_at=row["dropped_at"],
        created_at=row["created_at"],
    )


def handoff_ending(end: HandoffEnd, now: float) -> dict[str, Any]:
    """The columns an attempt's end writes besides the ones given (error, next attempt)."""
    columns: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None}
    if end is HandoffEnd.DELIVERED:
        columns.update(delivered_at=now, last_error=None, next_attempt_at=None)
    elif end is HandoffEnd.DROPPED:
        columns.update(dropped_at=now, next_attempt_at=None)
    return columns
