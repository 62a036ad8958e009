"""The PostgreSQL journal (fleet mode): the SQLite journal's contract, shared by hosts.

Every state change is one transaction that locks the row (`FOR UPDATE`), rewrites it and
appends an event naming the host. Workers claim with `FOR UPDATE SKIP LOCKED`, so hosts never
wait on each other's rows; times are on the database clock (connection.DatabaseClock).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from psycopg.rows import DictRow

from mavi_uploader.config.model import UploadOrder
from mavi_uploader.core.handoffs import HandoffKind
from mavi_uploader.core.records import FileRecord
from mavi_uploader.core.states import RELEASE_LEASE, State
from mavi_uploader.journal.api import JournalError, Work, check_transition
from mavi_uploader.journal.boundary import wraps_driver_errors
from mavi_uploader.journal.postgres.connection import Conn, Database, lock_key
from mavi_uploader.journal.postgres.dedupe import FleetDedupe
from mavi_uploader.journal.postgres.fleet import WORK_CHANNEL, FleetMembership
from mavi_uploader.journal.postgres.handoffs import FleetHandoffs
from mavi_uploader.journal.postgres.liveness import HELD_BY_SILENT, SILENT_HOSTS, STEADY
from mavi_uploader.journal.postgres.places import Places
from mavi_uploader.journal.postgres.reads import FleetReads
from mavi_uploader.journal.postgres.rows import to_record
from mavi_uploader.journal.postgres.sightings import FleetSightings
from mavi_uploader.journal.postgres.slots import DatabaseSlots
from mavi_uploader.journal.sql import ORDER_PATIENCE, claim_order, claimable, holds, one, parked

Clock = Callable[[], float]


# Columns a transition may set besides state (the SQLite store's list: the same records).
# fmt: off
_WRITABLE = frozenset({
    "size", "mtime_ns", "stable_since", "sha256", "asset_id", "signed_url", "url_expires_at",
    "duplicate_of", "attempts", "next_attempt_at", "confirm_polls", "last_error",
    "lease_owner", "lease_expires_at", "bytes_sent", "upload_started_at", "progress_at",
    "after_upload_due", "server_failures", "sends", "accepted_at", "mavi_status",
    "mavi_status_since", "content_claimed",
})
# fmt: on
_INTEGER_FLAGS = ("after_upload_due", "content_claimed")
_HOLDS, _PARKED = holds(unless=HELD_BY_SILENT), parked(unless=HELD_BY_SILENT)
# A lease lapses when it expires, or when its host fell silent (taken only by a steady host).
_LAPSED = f"(lease_expires_at < %(now)s OR (host_id IN {SILENT_HOSTS} AND {STEADY}))"


@wraps_driver_errors
class PostgresJournal(FleetSightings, FleetReads, FleetDedupe, FleetHandoffs, FleetMembership):
    """One host's view of the fleet's journal: `JournalStore` (mavi_uploader.journal.api).

    `working`: this host's daemon and commands, whose work queries (claims, settling, owed
    after_upload, the crash rule) see only files this host can reach; otherwise a report's
    view of the whole fleet.
    """

    kind = "postgresql"

    def __init__(
        self, db: Database, places: Places, clock: Clock, *, host_timeout: float, working: bool
    ) -> None:
        self._db = db
        self._places = places
        self._clock = clock
        self._host_timeout = host_timeout
        self.claims_lapse_after: float | None = host_timeout
        self._working = working
        # The account's rate slots, shared by the fleet's hosts (connects on first use).
        self.rate_slots = DatabaseSlots(db.url)
        self._start_membership()

    @property
    def db_path(self) -> str:
        return self._db.shown

    @contextlib.contextmanager
    def _driver_errors(self) -> Iterator[None]:
        try:
            with self._db.errors():
                yield
        except JournalError:
            # Any failure may be an outage: this host counts as out of touch (no silent
            # host's work for it) until a heartbeat lands again and a host_timeout passes.
            self._beat_missed = True
            raise

    def now(self) -> float:
        """The database's clock (or the one a test injected)."""
        return self._clock()

    def close(self) -> None:
        self._stop_membership()
        self.rate_slots.close()
        self._db.close()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group the transitions made inside into one transaction (all or none)."""
        with self._db.transaction():
            yield

    def _mine(self) -> tuple[str, dict[str, Any]]:
        """SQL restricting work queries to the files this host can reach (a report: all),
        and the parameters of the liveness rules those queries use."""
        if not self._working:
            return "TRUE", self._liveness()
        return "scope = ANY(%(scopes)s)", {"scopes": self._places.scopes(), **self._liveness()}

    def _liveness(self) -> dict[str, Any]:
        return {
            "silent": self._clock() - self._host_timeout,
            "me": self._host(),
            "beating": not self._beat_missed,
        }

    def _event(self, conn: Conn, file_id: int, old: State | None, new: State, why: str) -> None:
        self._db.run(
            conn,
            "INSERT INTO events (file_id, at, from_state, to_state, reason, host_id)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (file_id, self._clock(), old.value if old else None, new.value, why, self._host()),
        )
        if new is State.QUEUED and old is not State.QUEUED:
            # Delivered at commit: idle workers on every host look at once, no polling.
            self._db.run(conn, "SELECT pg_notify(%s, '')", (WORK_CHANNEL,))

    def _host(self) -> str:
        return self._places.host_id

    # ---- transitions -----------------------------------------------------------------

    def _move(
        self,
        conn: Conn,
        file_id: int,
        old: State | Sequence[State] | None,
        new: State,
        why: str,
        fields: dict[str, Any],
        owner: str | None = None,
        *,
        claimed: State | None = None,
        handoffs: Sequence[HandoffKind] = (),
    ) -> FileRecord | None:
        """Lock the row (if the guard matches), check the move, rewrite it, add its event.
        `claimed`: a claim already locked the row in this transaction and read its state;
        the move then also makes this host the row's host, in the same UPDATE."""
        unknown = set(fields) - _WRITABLE
        if unknown:
            raise ValueError(f"not writable by a transition: {sorted(unknown)}")
        where, guard = self._guard(file_id, owner)
        if old is not None:
            olds = [old] if isinstance(old, State) else list(old)
            where += " AND state = ANY(%(olds)s)"
            guard["olds"] = [s.value for s in olds]
        extra: dict[str, Any] = {}
        if claimed is not None:
            from_state = claimed
            extra["host_id"] = self._host()
        else:
            before = self._db.run(
                conn, f"SELECT state FROM files WHERE {where} FOR UPDATE", guard
            ).fetchone()
            if before is None:
                return None  # the guard did not match: someone else moved the row first
            from_state = State(before["state"])
        check_transition(file_id, from_state, new)  # the one place a state is rewritten
        sets, values = _assignments(
            {**fields, **extra, "state": new.value, "updated_at": self._clock()}
        )
        row = self._db.run(
            conn, f"UPDATE files SET {sets} WHERE {where} RETURNING *", {**values, **guard}
        ).fetchone()
        assert row is not None  # locked by the SELECT ... FOR UPDATE above
        if from_state != new or why:
            self._event(conn, file_id, from_state, new, why)
        if handoffs:
            self._owe_handoffs(conn, file_id, new, handoffs)
        return to_record(row, self._places)

    def _guard(self, file_id: int, owner: str | None) -> tuple[str, dict[str, Any]]:
        where, guard = "id = %(id)s", dict[str, Any](id=file_id)
        if owner is not None:
            # A worker's name is unique on its host only: the lease is (host, worker).
            where += " AND lease_owner = %(owner)s AND host_id = %(host)s"
            guard.update(owner=owner, host=self._host())
        return where, guard

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
        """Move a file to `new` (if it is in `expect` and leased by `owner`), with an event
        and its owed `handoffs`; None when the guard did not match."""
        with self._db.transaction() as conn:
            return self._move(conn, file_id, expect, new, why, fields, owner, handoffs=handoffs)

    def update(self, file_id: int, *, owner: str | None = None, **fields: Any) -> bool:
        """Change bookkeeping columns without a state change (no event). One statement,
        atomic on its own: no BEGIN/COMMIT round trips around it (inside a `batch` it joins
        the batch's transaction)."""
        unknown = set(fields) - _WRITABLE
        if unknown:
            raise ValueError(f"not writable: {sorted(unknown)}")
        where, guard = self._guard(file_id, owner)
        sets, values = _assignments({**fields, "updated_at": self._clock()})
        with self._db.connection() as conn:
            cur = self._db.run(conn, f"UPDATE files SET {sets} WHERE {where}", {**values, **guard})
            return cur.rowcount == 1

    # ---- workers ---------------------------------------------------------------------

    def claim(
        self,
        owner: str,
        lease_seconds: float,
        *,
        order: UploadOrder = UploadOrder.FIFO,
        work: Work = Work.ANY,
    ) -> FileRecord | None:
        """Take the next due file this host can reach, in `order` (sql.claim_order): queued,
        confirming, or in flight under a lease that expired or another host that went silent.
        SKIP LOCKED: a row another host is taking right now is passed over, never waited for.

        This host's own rows are never taken for a silent host's: it is claiming, so it is
        alive, and its workers hold them until their leases expire (a late heartbeat here
        must not hand a file in upload to a second worker)."""
        now = self._clock()
        mine, args = self._mine()
        with self._db.transaction() as conn:
            row = self._db.run(
                conn,
                "SELECT id, state, lease_owner, host_id, lease_expires_at < %(now)s AS expired"
                f" FROM files WHERE {mine}"
                f" AND {claimable(work, now='%(now)s', parked=_PARKED, lapsed=_LAPSED)}"
                f" {claim_order(order, '%(overdue)s')} LIMIT 1 FOR UPDATE SKIP LOCKED",
                {**args, "now": now, "overdue": now - ORDER_PATIENCE},
            ).fetchone()
            if row is None:
                return None
            old = State(row["state"])
            new = State.UPLOADING if old is State.QUEUED else old
            why = self._claim_reason(row, owner)
            fields = {"lease_owner": owner, "lease_expires_at": now + lease_seconds}
            record = self._move(conn, row["id"], old, new, why, fields, claimed=old)
            assert record is not None  # locked by the SELECT above
            return record

    def _claim_reason(self, row: DictRow, owner: str) -> str:
        """The event of a claim (the event's host_id says which host claimed)."""
        if row["lease_owner"] is None:
            # A routine confirmation poll is not worth an event.
            return f"claimed by {owner}" if row["state"] == State.QUEUED.value else ""
        holder = row["lease_owner"]
        if row["host_id"] != self._host():
            holder = f"{row['host_id']}/{holder}"
        if not row["expired"]:
            return (
                f"host {row['host_id']} went silent (no heartbeat for"
                f" {self._host_timeout:g}s); {holder}'s claim taken by {owner}"
            )
        return f"lease of {holder} expired; reclaimed by {owner}"

    def recover_after_crash(self) -> int:
        """Crash rule, at start while this host's id is held (no other daemon of this host
        is alive): this host's uploading rows back to queued (their signed URLs kept), its
        confirming rows and its hand-offs unleased. Other hosts' rows are theirs until they
        fall silent."""
        with self._db.transaction() as conn:
            self._release_handoff_leases(conn)
            rows = self._db.run(
                conn,
                "SELECT id, state FROM files WHERE host_id = %s"
                f" AND (state = {one(State.UPLOADING)} OR lease_owner IS NOT NULL)"
                " ORDER BY id FOR UPDATE",
                (self._host(),),
            ).fetchall()
            for row in rows:
                if row["state"] == State.UPLOADING.value:
                    self._move(
                        conn,
                        row["id"],
                        State.UPLOADING,
                        State.QUEUED,
                        "daemon stopped during upload; will resume",
                        {**RELEASE_LEASE, "next_attempt_at": None},
                    )
                else:
                    self._db.run(
                        conn,
                        "UPDATE files SET lease_owner = NULL, lease_expires_at = NULL"
                        " WHERE id = %s",
                        (row["id"],),
                    )
        return len(rows)

    def _lock_file(self, conn: Conn, scope: str, key: bytes) -> None:
        """Serialise writers of one file's rows (two hosts sighting one share file)."""
        self._db.run(conn, "SELECT pg_advisory_xact_lock(%s)", (lock_key("file", scope, key),))


def _assignments(fields: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """`col = %(v_col)s, ...` and its values (flags stored as integers, as on SQLite)."""
    values = {
        f"v_{k}": int(v) if k in _INTEGER_FLAGS and isinstance(v, bool) else v
        for k, v in fields.items()
    }
    return ", ".join(f"{k} = %(v_{k})s" for k in fields), values
