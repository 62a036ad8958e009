"""MaviClient.abort_requests(): a request blocked waiting for an answer fails at once with
Stopped, over plain HTTP and over TLS (whose socket must not be unwrapped under the reader)."""

from __future__ import annotations

import http.server
import io
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import self_signed_certificate, wait_for
from mavi_uploader.mavi.client import MaviClient
from mavi_uploader.mavi.ratelimit import RateLimiter, Stopped


class _Silent(http.server.BaseHTTPRequestHandler):
    """Takes the whole body, then keeps its answer until `release` is set."""

    release = threading.Event()
    bodies_taken = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).bodies_taken += 1
        type(self).release.wait()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(params=[False, True], ids=["http", "https"])
def silent_storage(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    _Silent.release, _Silent.bodies_taken = threading.Event(), 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Silent)
    scheme = "http"
    if request.param:
        cert, key = self_signed_certificate(tmp_path)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # trusted for this test only
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"{scheme}://127.0.0.1:{server.server_address[1]}/bucket/re_1/a.mp4?sig=x"
    _Silent.release.set()
    server.shutdown()
    server.server_close()


def test_abort_cuts_a_request_waiting_for_its_answer(silent_storage: str) -> None:
    client = MaviClient("http://127.0.0.1:9/serve/api/v2", "k" * 20, limiter=RateLimiter(0))
    outcome: list[BaseException | None] = []

    def upload() -> None:
        try:
            client.upload(silent_storage, io.BytesIO(b"x" * 50_000), 50_000, "a.mp4")
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=upload, daemon=True)
    thread.start()
    wait_for(lambda: _Silent.bodies_taken == 1, what="the body taken, the answer held")
    started = time.monotonic()
    client.abort_requests()
    thread.join(timeout=10)
    assert time.monotonic() - started < 5
    (error,) = outcome
    assert isinstance(error, Stopped), repr(error)
    with pytest.raises(Stopped):  # and nothing more is sent once stopping
        client.upload(silent_storage, io.BytesIO(b"y"), 1, "b.mp4")
