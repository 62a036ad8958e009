"""The fleet's shared flags and liveness: the pause, heartbeats, hosts, wake-ups, host ids.

A host proves it is alive by its heartbeat (on the database clock); one silent for
host_timeout loses its claims (store.claim). Idle workers wait on LISTEN: the transaction
that queues a file NOTIFYs every host. A host id is held by a session advisory lock, so a
second live daemon with the same id is refused (exit 3), and a daemon killed with -9 frees
it the moment its connection drops.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

import psycopg

from mavi_uploader.core.records import HostInfo, Pause
from mavi_uploader.journal.api import HostTaken, JournalError
from mavi_uploader.journal.postgres.connection import (
    Conn,
    Database,
    DatabaseClock,
    connect_once,
    lock_key,
)
from mavi_uploader.journal.postgres.places import Places
from mavi_uploader.log import get_logger

log = get_logger(__name__)
WORK_CHANNEL = "mavi_uploader_work"
_RECONNECT_MAX = 10.0


class FleetMembership:
    """Shared flags and liveness; `PostgresJournal` provides the database and the clock."""

    _db: Database
    _places: Places
    _clock: Callable[[], float]
    _host_timeout: float
    _beat_missed: bool

    def _start_membership(self) -> None:
        self._listening = threading.Event()
        self._closing = threading.Event()
        self._listener: threading.Thread | None = None
        self._beat_missed = True  # no beat yet: this run's first one starts the count

    def _stop_membership(self) -> None:
        self._closing.set()
        if self._listener is not None:
            self._listener.join(timeout=5.0)

    # ---- the pause ---------------------------------------------------------------------

    def set_pause(self, reason: str) -> None:
        with self._db.transaction() as conn:
            self._db.run(
                conn,
                "INSERT INTO daemon_flags (key, value) VALUES ('pause_reason', %s)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (reason,),
            )
            self._db.run(
                conn,
                "INSERT INTO daemon_flags (key, value) VALUES ('pause_since', %s)"
                " ON CONFLICT (key) DO NOTHING",
                (repr(self._clock()),),
            )

    def clear_pause(self) -> None:
        self._db.rows(
            "DELETE FROM daemon_flags"
            " WHERE key IN ('pause_reason', 'pause_since', 'pause_next_probe') RETURNING key"
        )

    def pause(self) -> Pause | None:
        flags = {r["key"]: r["value"] for r in self._db.rows("SELECT key, value FROM daemon_flags")}
        if "pause_reason" not in flags:
            return None
        return Pause(flags["pause_reason"], float(flags.get("pause_since", "0")))

    def take_pause_probe(self, interval: float) -> bool:
        """One probe per `interval` for the whole fleet: the slot is taken atomically."""
        now = self._clock()
        taken = self._db.rows(
            "INSERT INTO daemon_flags (key, value) VALUES ('pause_next_probe', %(next)s)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            " WHERE daemon_flags.value::float8 <= %(now)s RETURNING key",
            {"next": repr(now + interval), "now": now},
        )
        return bool(taken)

    # ---- liveness ----------------------------------------------------------------------

    def heartbeat(self, pid: int) -> None:
        """This host is alive (and, with the real clock, re-measure the database's). The
        first beat after a miss restarts `connected_since` (see store._STEADY)."""
        try:
            with self._db.connection() as conn:
                if isinstance(self._clock, DatabaseClock):
                    self._clock.sync(conn)
                now = self._clock()
                self._db.run(
                    conn,
                    "INSERT INTO hosts (host_id, pid, started_at, last_seen, connected_since)"
                    " VALUES (%(host)s, %(pid)s, %(now)s, %(now)s, %(now)s)"
                    " ON CONFLICT (host_id) DO UPDATE SET pid = excluded.pid,"
                    " last_seen = excluded.last_seen, connected_since = CASE WHEN %(missed)s"
                    " THEN excluded.connected_since ELSE hosts.connected_since END",
                    {
                        "host": self._places.host_id,
                        "pid": pid,
                        "now": now,
                        "missed": self._beat_missed,
                    },
                )
        except JournalError:
            self._beat_missed = True
            raise
        self._beat_missed = False

    def hosts(self) -> list[HostInfo]:
        now = self._clock()
        uploading: dict[str, list[str]] = {}
        for row in self._db.rows(
            "SELECT host_id, scope, path FROM files WHERE state = 'uploading' ORDER BY id"
        ):
            uploading.setdefault(row["host_id"], []).append(
                self._places.shown(row["scope"], row["path"])
            )
        return [
            HostInfo(
                host_id=row["host_id"],
                pid=row["pid"],
                alive=row["last_seen"] >= now - self._host_timeout,
                last_seen=row["last_seen"],
                uploading=tuple(uploading.get(row["host_id"], ())),
            )
            for row in self._db.rows("SELECT * FROM hosts ORDER BY host_id")
        ]

    # ---- wake-ups ----------------------------------------------------------------------

    def on_new_work(self, wake: Callable[[], None]) -> None:
        """LISTEN on a connection of its own (a thread), reconnecting after an outage."""
        if self._listener is not None:
            return
        self._listener = threading.Thread(
            target=self._listen, args=(wake,), name="journal-listen", daemon=True
        )
        self._listener.start()

    def _listen(self, wake: Callable[[], None]) -> None:
        delay = 0.5
        while not self._closing.is_set():
            try:
                conn = connect_once(self._db.url, self._db.shown, timeout=5.0)
            except JournalError as exc:
                log.warning("journal: cannot listen for new work; retrying", error=str(exc))
                self._closing.wait(delay)
                delay = min(_RECONNECT_MAX, delay * 2)
                continue
            delay = 0.5
            try:
                with conn:
                    conn.execute(f"LISTEN {WORK_CHANNEL}")
                    self._listening.set()
                    wake()  # anything queued while we were not listening
                    while not self._closing.is_set():
                        for _ in conn.notifies(timeout=0.5):
                            wake()
            except psycopg.Error as exc:
                self._listening.clear()
                log.warning("journal: lost the connection listening for work", error=str(exc))


class HostLock:
    """Holds this host's id in the fleet for as long as the daemon runs (a session lock on
    a connection of its own; kept through an outage by `keep`)."""

    def __init__(self, url: str, shown: str, host_id: str, *, timeout: float = 10.0) -> None:
        self._url, self._shown, self.host_id = url, shown, host_id
        self._timeout = timeout
        self._key = lock_key("host", host_id)
        self._conn: Conn | None = None

    def acquire(self) -> None:
        """HostTaken if another live daemon holds this host id; JournalError if unreachable."""
        conn = connect_once(self._url, self._shown, timeout=self._timeout)
        row = conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (self._key,)).fetchone()
        if row is None or not row["ok"]:
            conn.close()
            raise HostTaken(
                f"another mavi-uploader daemon is running as host_id {self.host_id!r} in the"
                f" fleet at {self._shown}; stop it, or give this host its own host_id"
                " (MAVI_UPLOADER_HOST_ID)"
            )
        self._conn = conn

    def keep(self) -> None:
        """After an outage the session (and its lock) is gone: take it again. HostTaken if
        another daemon took this id meanwhile; JournalError while the server is away."""
        if self._conn is not None and not self._conn.closed:
            try:
                self._conn.execute("SELECT 1")
                return
            except psycopg.Error:
                with contextlib.suppress(psycopg.Error):
                    self._conn.close()
        self._conn = None
        self.acquire()

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
