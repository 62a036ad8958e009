"""What both stores' SQL shares: state literals and the row rules written as SQL fragments.

The fragments are plain SQL both SQLite and PostgreSQL read the same way; each store keeps its
own statements (placeholders, locking and types differ) and uses these for the rules, so a
rule is written once.
"""

from __future__ import annotations

from collections.abc import Iterable

from mavi_uploader.core.records import EMPTY_FILE
from mavi_uploader.core.states import ACTIVE_STATES, HANDLED_STATES, State


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
