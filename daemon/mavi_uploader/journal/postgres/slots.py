"""The account's request slots, shared by the fleet's hosts: the `rate_slots` table.

`DatabaseSlots` is the fleet's slot book for mavi/ratelimit.RateLimiter (it matches the
`SlotBook` protocol by its shape: the journal does not import mavi). Every call is one
statement on the database's clock, never a host's, so hosts whose clocks disagree still space
their calls. It keeps one connection of its own rather than taking the pool's: a pool
checkout pings the server first (a second round trip per slot), and a slot must not queue
behind the workers' transactions. While the server is away every call raises JournalError;
the limiter hands out no slot until the book answers again.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import psycopg
from psycopg.rows import DictRow

from mavi_uploader.journal.api import JournalError
from mavi_uploader.journal.postgres.connection import Conn, connect_once, shown_url

# The clock is read once per statement (clock_timestamp() moves while a statement runs).
_NOW = "WITH now AS MATERIALIZED (SELECT extract(epoch FROM clock_timestamp())::float8 AS t)"

# The next slot is the later of the booked one and now; the one after it `interval` later.
_RESERVE = f"""{_NOW}
INSERT INTO rate_slots AS r (endpoint, next_at)
SELECT %(endpoint)s, t + %(interval)s FROM now
ON CONFLICT (endpoint) DO UPDATE
    SET next_at = GREATEST(r.next_at, (SELECT t FROM now)) + %(interval)s
RETURNING r.next_at - %(interval)s - (SELECT t FROM now) AS delay"""

# Never earlier than booked: a penalty only pushes the next slot and the block later.
_PENALIZE = f"""{_NOW}
INSERT INTO rate_slots AS r (endpoint, next_at, blocked_until)
SELECT %(endpoint)s, t + %(seconds)s, t + %(seconds)s FROM now
ON CONFLICT (endpoint) DO UPDATE
    SET next_at = GREATEST(r.next_at, excluded.next_at),
        blocked_until = GREATEST(r.blocked_until, excluded.blocked_until)"""

_BLOCKED_FOR = """SELECT GREATEST(0, blocked_until - extract(epoch FROM clock_timestamp())) AS left
FROM rate_slots WHERE endpoint = %(endpoint)s"""


class DatabaseSlots:
    """Slots booked in the fleet's journal: one round trip per call, on the database clock."""

    unavailable: tuple[type[Exception], ...] = (JournalError,)

    def __init__(self, url: str, *, connect_timeout: float = 2.0) -> None:
        self._url = url
        self._shown = shown_url(url)
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()  # one statement at a time on the one connection
        self._conn: Conn | None = None
        self.round_trips = 0  # statements sent (bench/fleet_slots.py reports them)

    def reserve(self, endpoint: str, interval: float) -> float:
        row = self._one(_RESERVE, {"endpoint": endpoint, "interval": interval})
        assert row is not None  # an upsert always returns its row
        # Microseconds are the clock's resolution; what is finer is float8 rounding.
        return max(0.0, round(float(row["delay"]), 6))

    def penalize(self, endpoint: str, seconds: float) -> None:
        self._one(_PENALIZE, {"endpoint": endpoint, "seconds": seconds})

    def blocked_for(self, endpoint: str) -> float:
        row = self._one(_BLOCKED_FOR, {"endpoint": endpoint})
        return 0.0 if row is None else max(0.0, round(float(row["left"]), 6))

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _one(self, sql: str, args: dict[str, Any]) -> DictRow | None:
        with self._lock:
            if self._conn is None:
                self._conn = connect_once(self._url, self._shown, self._connect_timeout)
            self.round_trips += 1
            try:
                cur = self._conn.execute(sql, args)
                return cur.fetchone() if cur.description is not None else None
            except psycopg.Error as exc:
                self._drop()  # a server restart broke it: the next call connects afresh
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                raise JournalError(f"journal_url {self._shown}: rate slots: {reason}") from exc

    def _drop(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(psycopg.Error):  # already broken: nothing left to close
                conn.close()
