"""Connections to the fleet's PostgreSQL: a pool, transactions, the database clock, errors.

psycopg_pool replaces connections the server dropped (a restart) on their next checkout, so a
transaction after an outage simply works again; during one, every call raises JournalError
and the daemon's loops wait and retry, as they do for a full disk on SQLite.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from mavi_uploader.journal.api import JournalError, JournalSettingError
from mavi_uploader.redaction import register_secret

Conn = psycopg.Connection[DictRow]
Args = Sequence[Any] | Mapping[str, Any] | None
# Errors of a server that is away (down, restarting, unreachable): worth waiting out.
_AWAY = re.compile(
    r"connection refused|could not connect|timeout expired|timed out|server closed|"
    r"terminating connection|the database system is (starting up|shutting down)|no route|"
    r"network is unreachable|connection reset",
    re.IGNORECASE,
)


# The pool logs every failed reconnection attempt (several a second during an outage); the
# journal's own warnings say it once per thread and half minute.
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)


# Where a connection string keeps a password: a URL's user info or query, a key=value string.
_URL_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@:]*:(?P<pw>[^/]*)@")
_PARAM_PASSWORD = re.compile(r"(?:^|[?&\s])password\s*=\s*(?P<pw>'(?:[^'\\]|\\.)*'|[^&\s]+)")


def passwords_in(url: str) -> list[str]:
    """Every password `url` holds, as written and percent-decoded, to scrub from messages
    (found even where the URL does not parse: libpq quotes such a URL back in its error)."""
    found: list[str] = []
    try:
        parts = urlsplit(url)
        if "://" in url and parts.password:
            found.append(parts.password)
    except ValueError:
        pass
    found += [m.group("pw") for m in _URL_PASSWORD.finditer(url)]
    found += [m.group("pw").strip("'") for m in _PARAM_PASSWORD.finditer(url)]
    return sorted({p for raw in found for p in (raw, unquote(raw)) if p}, key=len, reverse=True)


def shown_url(url: str) -> str:
    """The URL as it may be printed: its password (if any) as ***, its query dropped; a
    key=value connection string with its password as ***."""
    if "://" not in url:
        return _PARAM_PASSWORD.sub(lambda m: m.group(0).replace(m.group("pw"), "***"), url)
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if password is not None:
        user = parts.username or ""
        netloc = f"{user}:***@{netloc.rsplit('@', 1)[1]}"
    return f"{parts.scheme}://{netloc}{parts.path}"


def scrubbed(text: str, url: str, shown: str) -> str:
    """`text` (a driver's message) without the URL's password: libpq quotes bad URLs back."""
    text = text.replace(url, shown)
    for password in passwords_in(url):
        text = text.replace(password, "***")
    return text


def lock_key(*names: str | bytes) -> int:
    """A signed 64-bit advisory-lock key for a name (stable across hosts and versions)."""
    digest = hashlib.blake2b(digest_size=8)
    for name in names:
        digest.update(name.encode() if isinstance(name, str) else name)
        digest.update(b"\0")
    return int.from_bytes(digest.digest(), "big", signed=True)


# A server cut off by the network (packets dropped, no reset) is noticed by TCP in seconds,
# not after the system's default of about 15 minutes: keepalive probes on an idle connection,
# and a cap on how long sent bytes may go unacknowledged.
DEAD_PEER: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 15_000,  # milliseconds
}


def connect_once(url: str, shown: str, timeout: float) -> Conn:
    """One connection, or JournalError saying what is wrong: JournalSettingError for what
    only the configuration can fix (a bad URL, a refused login, no such database)."""
    for password in passwords_in(url):
        register_secret(password)  # masked in logs (a traceback quoting the driver's error)
    try:
        return psycopg.connect(
            url,
            autocommit=True,
            row_factory=dict_row,
            connect_timeout=max(1, round(timeout)),
            **DEAD_PEER,
        )
    except psycopg.Error as exc:
        reason = scrubbed(_first_line(exc), url, shown)
        if _AWAY.search(str(exc)):
            raise JournalError(
                f"journal_url {shown}: the database server cannot be reached ({reason});"
                " is PostgreSQL running there?"
            ) from exc
        raise JournalSettingError(
            f"journal_url {shown}: {reason}. Fix journal_url (MAVI_UPLOADER_JOURNAL_URL):"
            " postgresql://user[:password]@host:port/database, a role allowed to log in and"
            " an existing database"
        ) from exc


class Database:
    """A pool of connections and the transactions taken from it (one per thread at a time;
    a transaction opened inside another on the same thread joins it, like SQLite's batch)."""

    def __init__(self, url: str, *, max_size: int, timeout: float = 10.0) -> None:
        self.url = url
        self.shown = shown_url(url)
        self._timeout = timeout
        connect_once(url, self.shown, timeout).close()  # a clear error now, not a pool timeout
        self.pool: ConnectionPool[Conn] = ConnectionPool(
            url,
            connection_class=psycopg.Connection[DictRow],
            min_size=1,
            max_size=max_size,
            kwargs={"autocommit": True, "row_factory": dict_row, **DEAD_PEER},
            check=self._check,
            timeout=timeout,
            # A failed (re)connection is not retried in the background: the pool gives up at
            # once and grows again when a call next waits for a connection, so the first call
            # after an outage connects at once instead of waiting out a backoff.
            reconnect_timeout=0,
            open=False,
            name="mavi-journal",
        )
        self.pool.open(wait=False)
        self._local = threading.local()
        self.round_trips = 0  # statements sent (bench/ reports them per file)

    def _check(self, conn: Conn) -> None:
        """The pool's check of a connection it hands out. One found dead (the server
        restarted) means the idle ones are dead too: drop them all now. Otherwise the pool
        tries them one by one, backing off 1, 2, 4 s between tries, and the first call after
        a restart times out with the server back."""
        try:
            ConnectionPool.check_connection(conn)
        except psycopg.Error:
            self.pool.check()  # checks each idle connection once, replaces the dead ones
            raise

    @contextlib.contextmanager
    def connection(self) -> Iterator[Conn]:
        """This thread's connection in a transaction if it has one open, else a pooled one."""
        conn: Conn | None = getattr(self._local, "conn", None)
        if conn is not None:
            yield conn
            return
        with self.errors(), self.pool.connection() as pooled:
            yield pooled

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Conn]:
        conn: Conn | None = getattr(self._local, "conn", None)
        if conn is not None:
            yield conn
            return
        with self.errors(), self.pool.connection() as pooled, pooled.transaction():
            self._local.conn = pooled
            try:
                yield pooled
            finally:
                self._local.conn = None

    def run(self, conn: Conn, sql: str, args: Args = None) -> psycopg.Cursor[DictRow]:
        self.round_trips += 1
        return conn.execute(sql, args)

    def rows(self, sql: str, args: Args = None) -> list[DictRow]:
        with self.connection() as conn:
            return self.run(conn, sql, args).fetchall()

    def row(self, sql: str, args: Args = None) -> DictRow | None:
        with self.connection() as conn:
            return self.run(conn, sql, args).fetchone()

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Driver errors (and a pool that waited in vain) -> JournalError naming the URL."""
        try:
            yield
        except psycopg.Error as exc:
            raise JournalError(f"journal_url {self.shown}: {_first_line(exc)}") from exc

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.pool.close(timeout=2.0)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _steady_now() -> float:
    """A clock no one sets: it counts through a suspend (BOOTTIME) and never steps."""
    if hasattr(time, "CLOCK_BOOTTIME"):
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    return time.monotonic()  # pragma: no cover - not Linux


class DatabaseClock:
    """The database's clock, read without a round trip: a steady local clock plus the offset
    measured against the server's at `sync` (each heartbeat). Leases, slots and ages agree
    across hosts whose wall clocks disagree, and a wall clock stepped by NTP or by hand
    between two heartbeats changes nothing."""

    def __init__(self) -> None:
        self._offset = time.time() - _steady_now()  # until the first sync

    def sync(self, conn: Conn) -> None:
        before = _steady_now()
        row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8 AS now").fetchone()
        after = _steady_now()
        if row is not None:
            self._offset = float(row["now"]) - (before + after) / 2

    def __call__(self) -> float:
        return _steady_now() + self._offset
