"""How long MAVI (the API or its storage) has gone without answering: `run --once` ends on it.

Per host, the silence starts at the oldest request still waiting for its answer, or at the last
answer if that came later: a request hanging on a server that took the connection and never
answers counts from when it was sent, not from when its read timeout finally fires. A request
that timed out or could not connect keeps the host silent (since it was sent) until an answer
comes. An upload's silence restarts each time storage takes another chunk of the body: bytes
moving are not silence, or a long upload would look like an outage. A request that failed for
a reason of ours (a disk error mid-body, a stopping daemon) is forgotten.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(eq=False)
class Ticket:
    """One request on its way: its host, and since when it waits for a word from it."""

    host: str
    since: float


@dataclass
class _Host:
    waiting: set[Ticket] = field(default_factory=set)
    answered_at: float | None = None
    failed_since: float | None = None  # a timed-out or refused request since the last answer


class Silence:
    """Thread-safe; `clock` is monotonic seconds (injectable for tests)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._hosts: dict[str, _Host] = {}

    def sent(self, host: str) -> Ticket:
        """A request to `host` starts now; settle its ticket with one of the calls below."""
        ticket = Ticket(host, self._clock())
        with self._lock:
            self._hosts.setdefault(host, _Host()).waiting.add(ticket)
        return ticket

    def moving(self, ticket: Ticket) -> None:
        """The host took more of the request's body: its wait for an answer starts again."""
        ticket.since = self._clock()

    def answered(self, ticket: Ticket) -> None:
        with self._lock:
            state = self._hosts[ticket.host]
            state.waiting.discard(ticket)
            state.answered_at = self._clock()
            state.failed_since = None

    def unanswered(self, ticket: Ticket) -> None:
        """It timed out or could not connect: the host stays silent since the request went."""
        with self._lock:
            state = self._hosts[ticket.host]
            state.waiting.discard(ticket)
            since = self._since(state, ticket)
            if state.failed_since is None or since < state.failed_since:
                state.failed_since = since

    def dropped(self, ticket: Ticket) -> None:
        """It failed for a reason that says nothing about the host."""
        with self._lock:
            self._hosts[ticket.host].waiting.discard(ticket)

    def seconds(self) -> float:
        """Seconds the least reachable host has gone without any answer (0: none is silent)."""
        with self._lock:
            starts = [
                since
                for state in self._hosts.values()
                for since in (
                    state.failed_since,
                    *(self._since(state, t) for t in state.waiting),
                )
                if since is not None
            ]
        return max(0.0, self._clock() - min(starts)) if starts else 0.0

    @staticmethod
    def _since(state: _Host, ticket: Ticket) -> float:
        if state.answered_at is None:
            return ticket.since
        return max(ticket.since, state.answered_at)
