"""HTTP connections a stopping daemon can cut.

Once a request body is sent, requests blocks reading the answer (a storage that took 4 GB can
take minutes to answer) and checks no stop flag: a warm stop waited out the whole read
timeout and systemd killed the daemon. Every request of a session mounted here runs on a
connection registered while it is in flight; `InFlight.abort()` shuts their sockets down from
the stopping thread, so the blocked send or read fails at once and the worker hands its row
back. Shutting down (not closing) the socket leaves the descriptor to its owner thread, and
the plain socket's shutdown skips SSLSocket's, which would unwrap TLS under the reader's feet.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any, ClassVar

import requests
import urllib3.poolmanager
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class InFlight:
    """The connections with a request in flight, for one client."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: set[HTTPConnection] = set()
        self.aborted = False  # for good: a stopping daemon sends nothing more

    def enter(self, conn: HTTPConnection) -> None:
        with self._lock:
            self._connections.add(conn)
            if self.aborted:
                _cut(conn)

    def leave(self, conn: HTTPConnection) -> None:
        with self._lock:
            self._connections.discard(conn)

    def abort(self) -> None:
        """Fail every request in flight now, and every later one at once."""
        with self._lock:
            self.aborted = True
            for conn in self._connections:
                _cut(conn)

    def mount(self, session: requests.Session) -> None:
        adapter = _Adapter(self)
        session.mount("http://", adapter)
        session.mount("https://", adapter)


def _cut(conn: HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Tracked(HTTPConnection):
    """Registers itself from the first byte of a request to the end of its answer's head."""

    registry: ClassVar[InFlight]

    def connect(self) -> None:
        super().connect()
        if self.registry.aborted:  # the stop came while we were connecting
            _cut(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        self.registry.enter(self)
        try:
            super().request(*args, **kwargs)
        except BaseException:
            self.registry.leave(self)
            raise

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().getresponse(*args, **kwargs)
        finally:
            self.registry.leave(self)


def _pool_classes(registry: InFlight) -> dict[str, type[HTTPConnectionPool]]:
    class Plain(_Tracked):
        pass

    class Secure(_Tracked, HTTPSConnection):
        pass

    Plain.registry = Secure.registry = registry

    class PlainPool(HTTPConnectionPool):
        ConnectionCls = Plain

    class SecurePool(HTTPSConnectionPool):
        ConnectionCls = Secure

    return {"http": PlainPool, "https": SecurePool}


class _Adapter(HTTPAdapter):
    def __init__(self, registry: InFlight) -> None:
        self._classes = _pool_classes(registry)  # before super(): it builds the pool manager
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._classes

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        # An HTTP(S) proxy's manager uses the stock pools; a SOCKS one has its own: keep those.
        if manager.pool_classes_by_scheme is urllib3.poolmanager.pool_classes_by_scheme:
            manager.pool_classes_by_scheme = self._classes
        return manager
