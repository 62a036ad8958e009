"""`http_listen`: the daemon's read-only HTTP endpoint, on a thread of its own.

`GET /metrics` (Prometheus text), `GET /api/status` (the `status --json` object), `GET /` (the
status page). Only GET and HEAD: any other method is 405, and no path changes anything.

The standard library's ThreadingHTTPServer, not prometheus-client's server: that one serves
only the metrics, and this endpoint serves a page and a JSON document with their own headers
(the page's Content-Security-Policy). A thread per request, so a slow client never holds up
a scrape; each gets `REQUEST_TIMEOUT` seconds of socket silence before it is dropped.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import socket
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from mavi_uploader.config.listen import ListenAddress
from mavi_uploader.config.model import Config
from mavi_uploader.config.settings import ConfigError
from mavi_uploader.journal import JournalError
from mavi_uploader.log import get_logger
from mavi_uploader.service.metrics import CONTENT_TYPE, Metrics
from mavi_uploader.service.page import DATA_POLICY, page, page_policy
from mavi_uploader.service.status_reports import StatusReports

log = get_logger(__name__)
REQUEST_TIMEOUT = 10.0
_ALLOWED = "GET, HEAD"


class Reports(Protocol):
    """Where the served status document comes from (status_reports.StatusReports)."""

    def document(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def endpoint_for(config: Callable[[], Config], metrics: Metrics) -> HttpEndpoint | None:
    """The endpoint `http_listen` asks for (None: not set); `config` is the daemon's now."""
    listen = config().http_listen
    if listen is None:
        return None
    reports = StatusReports(config)
    metrics.watch(reports.document)
    return HttpEndpoint(listen, reports, metrics)


class HttpEndpoint:
    """Bound by `start()` (ConfigError if the address cannot be had), served until `stop()`."""

    def __init__(self, listen: ListenAddress, reports: Reports, metrics: Metrics) -> None:
        self.listen = listen
        self.reports = reports
        self.metrics = metrics
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port bound (the one the system chose, for port 0)."""
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    def start(self) -> None:
        try:
            server = _Server(self.listen, self)
        except OSError as exc:
            raise ConfigError(_bind_problem(self.listen, exc)) from None
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="http"
        )
        self._thread.start()
        shown = ListenAddress(self.listen.host, self.port)
        log.info("http listening", url=f"http://{shown}/", metrics=f"http://{shown}/metrics")

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()  # serve_forever returns within its poll interval
        server.server_close()
        if self._thread is not None:
            self._thread.join()
        self.reports.close()

    def respond(self, path: str) -> tuple[int, str, bytes, str]:
        """(status, content type, body, Content-Security-Policy) for a GET of `path`."""
        path = path.partition("?")[0]
        try:
            if path == "/metrics":
                return 200, CONTENT_TYPE, self.metrics.render(), DATA_POLICY
            if path == "/api/status":
                body = json.dumps(self.reports.document(), indent=2).encode() + b"\n"
                return 200, "application/json", body, DATA_POLICY
        except JournalError as exc:
            # The journal is away (a fleet's server restarting): say so, never a stale answer.
            text = f"journal unavailable: {exc}\n".encode()
            return 503, "text/plain; charset=utf-8", text, DATA_POLICY
        if path in ("/", "/index.html"):
            return 200, "text/html; charset=utf-8", page(), page_policy()
        return 404, "text/plain; charset=utf-8", b"not found\n", DATA_POLICY


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a request in progress never holds up the daemon's exit

    def __init__(self, listen: ListenAddress, endpoint: HttpEndpoint) -> None:
        self.address_family = socket.AF_INET6 if listen.ipv6 else socket.AF_INET
        self.endpoint = endpoint
        super().__init__((listen.host, listen.port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Not socketserver's traceback on stderr: a client gone mid-answer (a scrape timed
        out) is nothing to report; anything else is one line."""
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            log.warning("http request failed", error=repr(error))

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host name up (getfqdn), which may wait on DNS.
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "mavi-uploader"
    sys_version = ""  # no Python version in the Server header
    timeout = REQUEST_TIMEOUT

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def __getattr__(self, name: str) -> Any:
        # Every other method, whatever its name (POST, DELETE, PROPFIND...): 405, not 501.
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def _not_allowed(self) -> None:
        self._send(405, "text/plain; charset=utf-8", b"read-only: GET or HEAD\n", DATA_POLICY)

    def _answer(self, *, head: bool) -> None:
        if not self._host_allowed():
            body = b"this endpoint answers to its IP address or localhost only\n"
            self._send(421, "text/plain; charset=utf-8", body, DATA_POLICY)
            return
        status, content_type, body, policy = self.server.endpoint.respond(self.path)
        self._send(status, content_type, body, policy, head=head)

    def _host_allowed(self) -> bool:
        """On loopback, the Host header must name an address or localhost: a web page whose
        DNS name is rebound to 127.0.0.1 would otherwise read the status from the browser."""
        if not self.server.endpoint.listen.loopback:
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        name = host[1:].partition("]")[0] if host.startswith("[") else host.rpartition(":")[0]
        name = name or host  # no port in the header
        if name == "localhost":
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    def _send(
        self, status: int, content_type: str, body: bytes, policy: str, *, head: bool = False
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", policy)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        if status == 405:
            self.send_header("Allow", _ALLOWED)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged: a scrape every 15 s would drown the daemon's own lines."""


def _bind_problem(listen: ListenAddress, exc: OSError) -> str:
    fix = "choose another port in http_listen, or remove http_listen"
    if exc.errno == errno.EADDRINUSE:
        why = "the address is already in use (another program, or another daemon, listens there)"
        fix = "stop what listens there or " + fix
    elif exc.errno == errno.EADDRNOTAVAIL:
        why = "this host has no such address"
        fix = "name an address of this host, e.g. 127.0.0.1, or remove http_listen"
    elif exc.errno == errno.EACCES:
        why = "permission denied (ports below 1024 need privileges)"
    else:
        why = exc.strerror or str(exc)
    return f"http_listen {listen}: cannot listen: {why}; {fix}"
