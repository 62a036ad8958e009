"""TLS verification is always on: a server with an untrusted certificate is never talked to."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import self_signed_certificate
from mavi_uploader.mavi.client import MaviClient, TransientError
from mavi_uploader.mavi.ratelimit import RateLimiter


class _Handler(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_POST(self) -> None:
        _Handler.hits += 1
        body = b'{"code":200,"msg":"success","data":{"asset_id":"re_1","signed_url":"https://x/"}}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def self_signed_server(tmp_path: Path) -> Iterator[str]:
    cert, key = self_signed_certificate(tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/serve/api/v2"
    server.shutdown()
    server.server_close()


def test_an_untrusted_certificate_is_refused(
    self_signed_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(var, raising=False)
    _Handler.hits = 0
    client = MaviClient(self_signed_server, "k" * 20, limiter=RateLimiter(0), timeout=(5, 5))
    with pytest.raises(TransientError, match="TLS verification failed") as info:
        client.sign("a.mp4")
    assert not info.value.network  # counts towards giving up: someone must fix it
    assert _Handler.hits == 0  # the request never reached the handler
