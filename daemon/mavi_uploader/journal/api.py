"""The one journal interface: what the daemon, the CLI and the reports ask of a store.

Every store (SQLite, the embedded default; PostgreSQL, fleet mode) implements `JournalStore`,
raises only `JournalError` (driver errors are wrapped at its boundary) and writes no state
change outside core/states.ALLOWED.
tests/contract/ runs one suite against every store.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from mavi_uploader.config.model import UploadOrder
from mavi_uploader.core.handoffs import Handoff, HandoffEnd, HandoffKind
from mavi_uploader.core.records import Event, FileRecord, HostInfo, Observation, Pause
from mavi_uploader.core.states import State, is_allowed


class JournalError(Exception):
    """The journal cannot be opened or used; the message names the file (or database)."""


class JournalSettingError(JournalError):
    """The journal cannot be used as configured (a bad `journal_url`, a refused login, a
    missing database): a configuration error, not a passing outage (the CLI exits 2)."""


class HostTaken(JournalError):
    """Another live daemon already runs under this host_id in the fleet (the CLI exits 3)."""


class IllegalTransition(RuntimeError):
    """A move outside core/states.ALLOWED: a bug, refused before anything is written.

    Not a JournalError: the callers that wait out a failing journal (a full disk) and retry
    must not retry a bug for ever in silence; it surfaces as an unexpected error, logged.
    """

    def __init__(self, file_id: int | None, old: State | None, new: State) -> None:
        self.file_id = file_id
        self.old = old
        self.new = new
        row = "a new row" if file_id is None else f"file #{file_id}"
        before = "(none)" if old is None else old.value
        super().__init__(f"{row}: {before} -> {new.value} is not an allowed transition")


def check_transition(file_id: int | None, old: State | None, new: State) -> None:
    """Raise IllegalTransition unless `old` -> `new` is in ALLOWED (stores call this at the
    one place they write a state)."""
    if not is_allowed(old, new):
        raise IllegalTransition(file_id, old, new)


class ContentClaim(enum.Enum):
    """What `claim_content` found."""

    CLAIMED = "claimed"  # ours now: upload it
    UPLOADED = "uploaded"  # a done twin exists: a duplicate of it
    IN_FLIGHT = "in flight"  # another row holds it: wait (parked) for that one
    SPENT = "spent"  # a failed twin already used up the complete uploads allowed
    LOST = "lost"  # the row is no longer ours (lease taken)


class Work(enum.Enum):
    """What a claim may take: the daemon's upload workers take uploads and its confirmer takes
    confirmation polls, so a due poll never waits behind long uploads (and the reverse)."""

    ANY = "any"
    UPLOADS = "uploads"  # queued rows, and uploads whose lease lapsed
    CONFIRMATIONS = "confirmations"  # due confirmation polls, and ones whose lease lapsed


class SizeClaim(enum.Enum):
    """What `claim_size` found."""

    CLAIMED = "claimed"  # no other file of this size: send it, hashing what is sent
    TAKEN = "taken"  # another file of this size might be a copy: hash it first, then dedupe
    LOST = "lost"  # the row is no longer ours (lease taken)


@dataclass(frozen=True)
class Fleet:
    """Where a fleet's shared journal is and who this host is in it (fleet mode)."""

    url: str = field(repr=False)  # postgresql://...; may hold a password: never logged
    host_id: str
    # share name -> where this host mounts it; files there are the fleet's, not this host's
    shares: Mapping[str, str] = field(default_factory=dict)
    host_timeout: float = 30.0  # a host silent this long loses its claims to the others
    # How long one call waits for the database (a connection, a login) before JournalError:
    # during an outage every call fails after this long instead of hanging (tests: small).
    wait: float = 10.0


class JournalStore(Protocol):
    """File rows, their transitions (each with an event) and the daemon's shared flags."""

    kind: str  # "sqlite" | "postgresql", as `status --json` reports it
    # How long this host's claims outlive it losing touch with the journal: a fleet's other
    # hosts take them after host_timeout; None: never (a single host's own journal).
    claims_lapse_after: float | None

    # ---- the watcher and commands --------------------------------------------------------

    def sight(self, observations: Iterable[Observation]) -> list[FileRecord]:
        """Record candidate files seen on disk; returns rows created or sent back to settle."""
        ...

    def handled_index(self, watch_root: str) -> dict[str, tuple[int, int]]:
        """path -> (size, mtime_ns) of files under `watch_root` whose latest row is handled."""
        ...

    def enqueue(self, obs: Observation, why: str) -> FileRecord:
        """Queue a file now (no settle wait); its live or already-handled row if it has one."""
        ...

    def record_rejection(self, obs: Observation, why: str) -> FileRecord:
        """Journal a file refused outright (`skipped`, `why` as its last_error)."""
        ...

    # ---- transitions -----------------------------------------------------------------

    def transition(
        self,
        file_id: int,
        new: State,
        why: str,
        *,
        expect: State | Sequence[State] | None = None,
        owner: str | None = None,
        handoffs: Sequence[HandoffKind] = (),
        **fields: Any,
    ) -> FileRecord | None:
        """Move a file to `new` with an event; None when the guard (`expect`, `owner`) did
        not match; IllegalTransition when ALLOWED has no such move. `handoffs` (a move to
        done or duplicate only): one owed hand-off per kind, in the same transaction."""
        ...

    def update(self, file_id: int, *, owner: str | None = None, **fields: Any) -> bool:
        """Change bookkeeping columns without a state change (no event)."""
        ...

    def batch(self) -> AbstractContextManager[None]:
        """Group the transitions made inside into one transaction (all or none)."""
        ...

    # ---- workers ---------------------------------------------------------------------

    def claim(
        self,
        owner: str,
        lease_seconds: float,
        *,
        order: UploadOrder = UploadOrder.FIFO,
        work: Work = Work.ANY,
    ) -> FileRecord | None:
        """Atomically take the next due file of `work` under a lease (never the same row
        twice); of several due, the first in `order` (journal/sql.py `claim_order`)."""
        ...

    def claim_content(
        self, file_id: int, sha256: str, owner: str, *, max_sends: int
    ) -> tuple[ContentClaim, FileRecord | None]:
        """Dedupe: the first row to claim some content uploads it (a row claiming its size,
        with no hash yet, holds every content of that size)."""
        ...

    def claim_size(self, file_id: int, size: int, owner: str) -> SizeClaim:
        """Dedupe without hashing first: the row claims every content of its `size` unless
        another file of that size might be a copy (then it is hashed first, as before)."""
        ...

    def recover_after_crash(self) -> int:
        """Crash rule: this host's uploading rows back to queued, its confirming rows and its
        hand-offs lose their lease (a fleet's other hosts keep theirs)."""
        ...

    # ---- the hand-off outbox (on_done, webhook) ----------------------------------------

    def claim_handoff(
        self, owner: str, lease_seconds: float, kinds: Sequence[HandoffKind]
    ) -> tuple[Handoff, FileRecord] | None:
        """Take the next due hand-off of `kinds` under a lease (a lapsed lease is taken over,
        with an event), never while an earlier one of its file and kind is owed; with its file
        as this host sees it. In a fleet, one host takes each (SKIP LOCKED)."""
        ...

    def end_handoff(
        self,
        handoff_id: int,
        owner: str,
        end: HandoffEnd,
        reason: str,
        *,
        last_error: str | None = None,
        next_attempt_at: float | None = None,
    ) -> bool:
        """Journal how an attempt ended (an event on the file with `reason`, but RELEASED);
        False when the lease is no longer `owner`'s (it lapsed and another runner took it)."""
        ...

    def handoffs(
        self, file_ids: Sequence[int] | None = None, limit: int | None = None
    ) -> list[Handoff]:
        """Owed hand-offs (of `file_ids`, or all), failing ones first."""
        ...

    def handoff_counts(self) -> tuple[int, int]:
        """(owed, failing: owed after at least one failed attempt)."""
        ...

    # ---- the fleet (a single-host store has no one to share with) ----------------------

    def heartbeat(self, pid: int) -> None:
        """This host is alive: its claims stay its own for another host_timeout."""
        ...

    def hosts(self) -> list[HostInfo]:
        """The fleet's hosts, this one included; empty for a single-host store."""
        ...

    def take_pause_probe(self, interval: float) -> bool:
        """While paused: may this host probe now? At most one probe per `interval` across
        every host sharing the journal."""
        ...

    def on_new_work(self, wake: Callable[[], None]) -> None:
        """Call `wake` (from another thread) whenever another process queues work."""
        ...

    # ---- the pause -------------------------------------------------------------------

    def set_pause(self, reason: str) -> None: ...

    def clear_pause(self) -> None: ...

    def pause(self) -> Pause | None: ...

    # ---- retention -------------------------------------------------------------------

    def prune(self, older_than: float, still_there: Callable[[FileRecord], bool]) -> int:
        """Delete finished rows last touched before `older_than`; returns how many."""
        ...

    def forget(self, ids: Sequence[int]) -> list[int]:
        """Delete finished rows and their events; returns the ids deleted."""
        ...

    # ---- reads -----------------------------------------------------------------------

    def get(self, file_id: int) -> FileRecord | None: ...

    def by_path(self, path: str) -> list[FileRecord]: ...

    def files(self, state: State | None = None, limit: int | None = None) -> list[FileRecord]: ...

    def in_states(self, states: Sequence[State]) -> list[FileRecord]: ...

    def history(self, file_id: int) -> list[Event]: ...

    def counts(self) -> dict[str, int]: ...

    def recent_errors(self, limit: int = 5) -> list[FileRecord]: ...

    def after_upload_owed(self, finished_before: float) -> list[FileRecord]: ...

    def has_unfinished(self) -> bool: ...

    def has_work_besides_confirming(self) -> bool: ...

    def next_due_at(self) -> float | None: ...

    def now(self) -> float:
        """The journal's clock, for ages compared with its times."""
        ...

    def close(self) -> None: ...
