"""http_listen in process: the address rules, the request outcomes the client counts, the
metrics' exposition, and the endpoint's methods, headers and Host check."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fakemavi import FakeMavi, Fault
from mavi_uploader.config.listen import ListenAddress, parse_listen
from mavi_uploader.config.settings import ConfigError, load_config
from mavi_uploader.core.records import Observation, State
from mavi_uploader.journal import JournalError, open_journal
from mavi_uploader.mavi.client import AuthProblem, MaviClient, TransientError
from mavi_uploader.mavi.errors import PermanentError, RateLimited, SignedUrlRejected
from mavi_uploader.mavi.ratelimit import Stopped
from mavi_uploader.mavi.tally import (
    CLIENT_ERROR,
    NETWORK_ERROR,
    NOT_FOUND,
    OK,
    RATE_LIMITED,
    SERVER_ERROR,
    outcome,
)
from mavi_uploader.redaction import register_secret
from mavi_uploader.service.httpd import HttpEndpoint
from mavi_uploader.service.lock import probe
from mavi_uploader.service.metrics import Metrics
from mavi_uploader.service.status import bandwidth_document, status_document
from mavi_uploader.service.status_reports import StatusReports

KEY = "http-test-key-5d2e8c01"
register_secret(KEY)


# ---- http_listen ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "host", "port"),
    [
        ("127.0.0.1:9464", "127.0.0.1", 9464),
        ("[::1]:9464", "::1", 9464),
        ("9464", "127.0.0.1", 9464),  # a port alone: loopback, never every interface
        (":9464", "127.0.0.1", 9464),
        (9464, "127.0.0.1", 9464),  # a TOML integer
        ("localhost:9464", "127.0.0.1", 9464),
        ("0.0.0.0:9464", "0.0.0.0", 9464),  # every interface, only when named
        ("[::]:80", "::", 80),
        ("192.168.1.20:0", "192.168.1.20", 0),  # 0: a free port, logged
        (" 10.0.0.1:9464 ", "10.0.0.1", 9464),
    ],
)
def test_listen_addresses(value: object, host: str, port: int) -> None:
    assert parse_listen(value) == ListenAddress(host, port)


@pytest.mark.parametrize(
    "value",
    ["::1:9464", "[::1]", "[::1]9464", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536",
     "127.0.0.1:-1", "example.com:9464", "9464x", "1.2.3:9464", True, 9.5, ["127.0.0.1:1"]],
)  # fmt: skip
def test_listen_refuses(value: object) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_listen(value)


def test_listen_empty_is_off() -> None:
    assert parse_listen("") is None and parse_listen("  ") is None


def test_listen_address_kinds() -> None:
    assert ListenAddress("127.0.0.1", 1).loopback and not ListenAddress("127.0.0.1", 1).everywhere
    assert ListenAddress("::", 1).everywhere and str(ListenAddress("::1", 5)) == "[::1]:5"


def _config(tmp_path: Path, line: str) -> Any:
    path = tmp_path / "config.toml"
    path.write_text(f'{line}\n[[watch]]\npath = "{tmp_path}"\n')
    return load_config(config_path=str(path), env={}, require_api_key=False)


def test_config_error_names_the_key_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(tmp_path, 'http_listen = "::1:9464"')
    message = str(caught.value)
    assert "config.toml" in message and "http_listen" in message
    assert "[::1]:9464" in message  # the fix, written out


def test_config_default_is_off_and_loopback_is_quiet(tmp_path: Path) -> None:
    assert _config(tmp_path, "").http_listen is None
    config = _config(tmp_path, "http_listen = 9464")
    assert config.http_listen == ListenAddress("127.0.0.1", 9464)
    assert not any("http_listen" in w for w in config.warnings)


def test_config_warns_when_other_hosts_are_served(tmp_path: Path) -> None:
    config = _config(tmp_path, 'http_listen = "0.0.0.0:9464"')
    assert any("http_listen" in w and "other hosts" in w for w in config.warnings)


# ---- what the client counts ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (200, None, OK),
        (404, None, NOT_FOUND),  # metadata: MAVI does not know the asset yet
        (429, RateLimited("429"), RATE_LIMITED),
        (400, RateLimited("400 Request has exceeded the limit."), RATE_LIMITED),
        (401, AuthProblem("401"), CLIENT_ERROR),
        (415, PermanentError("415"), CLIENT_ERROR),
        (403, SignedUrlRejected("403", expired=True), CLIENT_ERROR),
        (503, TransientError("503"), SERVER_ERROR),
        (200, TransientError("no asset_id"), SERVER_ERROR),  # an answer it cannot read
        (None, TransientError("refused", network=True), NETWORK_ERROR),
        (None, TransientError("timed out"), NETWORK_ERROR),
        (None, Stopped("stopping"), None),  # cut by the daemon's stop: not counted
        (None, OSError("unreadable"), None),  # the local file: not the API's doing
    ],
)
def test_outcomes(status: int | None, error: BaseException | None, expected: str | None) -> None:
    assert outcome(status, error) == expected


class Recording:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.uploads: list[tuple[int, float]] = []

    def request(self, endpoint: str, outcome: str) -> None:
        self.requests.append((endpoint, outcome))

    def accepted(self, size: int, seconds: float) -> None:
        self.uploads.append((size, seconds))


@pytest.fixture
def key_fake() -> Iterator[FakeMavi]:
    with FakeMavi(KEY) as server:
        yield server


def test_client_counts_every_attempt(key_fake: FakeMavi, tmp_path: Path) -> None:
    tally = Recording()
    client = MaviClient(key_fake.api_base, KEY, timeout=(2.0, 5.0), tally=tally)
    key_fake.inject("sign", Fault("rate_limit_429", 429, retry_after=0.05))
    signed = client.sign("a.mp4")  # one rate-limited attempt, then the one that worked
    key_fake.inject("sign", Fault("status", 500))
    with pytest.raises(TransientError):
        client.sign("b.mp4")
    video = tmp_path / "a.mp4"
    video.write_bytes(b"x" * 5000)
    client.upload(signed.url, video, 5000, "a.mp4")
    assert client.metadata("re_unknown").upload_status == "NOT_FOUND"
    key_fake.set_api_key("another")
    with pytest.raises(AuthProblem):
        client.metadata(signed.asset_id)
    assert tally.requests == [
        ("sign", RATE_LIMITED), ("sign", OK), ("sign", SERVER_ERROR), ("storage", OK),
        ("metadata", NOT_FOUND), ("metadata", CLIENT_ERROR),
    ]  # fmt: skip
    assert [size for size, _ in tally.uploads] == [5000]
    assert tally.uploads[0][1] > 0


# ---- the exposition ----------------------------------------------------------------------------


def _status(**extra: Any) -> dict[str, Any]:
    counts = {s.value: 0 for s in State} | {"done": 4, "failed": 1}
    return {"counts": counts, "paused": None, "handoffs": {"owed": 0, "failing": 0}, **extra}


def samples(text: bytes) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            found.setdefault(sample.name, {})[labels] = sample.value
    return found


def test_metrics_exposition() -> None:
    metrics = Metrics()
    metrics.watch(lambda: _status(paused={"reason": "401", "since": "x"}))
    metrics.request("sign", OK)
    metrics.request("sign", OK)
    metrics.request("metadata", RATE_LIMITED)
    metrics.accepted(1000, 0.5)
    metrics.accepted(3000, 40.0)
    got = samples(metrics.render())
    assert got["mavi_uploader_files"][(("state", "done"),)] == 4
    assert got["mavi_uploader_files"][(("state", "failed"),)] == 1
    assert len(got["mavi_uploader_files"]) == len(State)
    assert got["mavi_uploader_paused"][()] == 1
    assert got["mavi_uploader_handoffs_owed"][()] == 0
    requests = got["mavi_uploader_api_requests_total"]
    assert len(requests) == 18  # every endpoint x outcome, zeros included
    assert requests[(("endpoint", "sign"), ("outcome", "ok"))] == 2
    assert requests[(("endpoint", "metadata"), ("outcome", "rate_limited"))] == 1
    assert requests[(("endpoint", "storage"), ("outcome", "ok"))] == 0
    assert got["mavi_uploader_uploaded_bytes_total"][()] == 4000
    assert got["mavi_uploader_upload_seconds_count"][()] == 2
    assert got["mavi_uploader_upload_seconds_sum"][()] == 40.5
    buckets = got["mavi_uploader_upload_seconds_bucket"]
    assert buckets[(("le", "1.0"),)] == 1 and buckets[(("le", "60.0"),)] == 2
    assert buckets[(("le", "+Inf"),)] == 2


def test_handoffs_owed_is_read_from_the_document() -> None:
    metrics = Metrics()
    metrics.watch(lambda: _status(handoffs={"owed": 3, "failing": 1}))
    assert samples(metrics.render())["mavi_uploader_handoffs_owed"][()] == 3


# ---- the endpoint ------------------------------------------------------------------------------

NASTY = '<img src=x onerror="alert(1)">&.mp4'


class StubReports:
    def __init__(self) -> None:
        self.fail = False
        self.closed = False

    def document(self) -> dict[str, Any]:
        if self.fail:
            raise JournalError("journal_url postgresql://u:***@db/x: server closed the connection")
        return _status(uploads=[{"path": NASTY}])

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def endpoint() -> Iterator[HttpEndpoint]:
    reports = StubReports()
    metrics = Metrics()
    metrics.watch(reports.document)
    served = HttpEndpoint(ListenAddress("127.0.0.1", 0), reports, metrics)
    served.start()
    try:
        yield served
    finally:
        served.stop()
    assert reports.closed


def call(
    endpoint: HttpEndpoint, method: str, path: str, host: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
    try:
        headers = {"Host": host} if host is not None else {}
        conn.request(method, path, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"])
@pytest.mark.parametrize("path", ["/", "/metrics", "/api/status", "/elsewhere"])
def test_only_get_and_head(endpoint: HttpEndpoint, method: str, path: str) -> None:
    status, headers, _ = call(endpoint, method, path)
    assert status == 405 and headers["allow"] == "GET, HEAD"


def test_get_head_and_headers(endpoint: HttpEndpoint) -> None:
    for path, kind in [("/", "text/html"), ("/metrics", "text/plain"), ("/api/status", "json")]:
        status, headers, body = call(endpoint, "GET", path)
        assert status == 200 and kind in headers["content-type"], path
        assert headers["cache-control"] == "no-store"
        assert headers["x-content-type-options"] == "nosniff"
        assert "default-src 'none'" in headers["content-security-policy"]
        assert "Python" not in headers["server"]
        head_status, head_headers, head_body = call(endpoint, "HEAD", path)
        assert (head_status, head_body) == (200, b"")
        assert head_headers["content-length"] == str(len(body))
    assert call(endpoint, "GET", "/nothing")[0] == 404
    assert call(endpoint, "GET", "/metrics?x=1")[0] == 200


def test_status_json_is_escaped_data(endpoint: HttpEndpoint) -> None:
    _, headers, body = call(endpoint, "GET", "/api/status")
    assert headers["content-type"] == "application/json"
    assert "sandbox" in headers["content-security-policy"]
    assert json.loads(body)["uploads"][0]["path"] == NASTY  # data; the page uses textContent


def test_page_policy_allows_only_its_own_inline_code(endpoint: HttpEndpoint) -> None:
    _, headers, body = call(endpoint, "GET", "/")
    policy = headers["content-security-policy"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    page = body.decode()
    for tag in ("script", "style"):
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", page, re.DOTALL)
        assert len(blocks) == 1
        digest = base64.b64encode(hashlib.sha256(blocks[0].encode()).digest()).decode()
        assert f"{tag}-src 'sha256-{digest}'" in policy
    assert not re.search(r"(src|href)=\"?(https?:)?//", page)  # no external assets
    assert "innerHTML" not in page and "insertAdjacentHTML" not in page


def test_loopback_answers_only_to_addresses_and_localhost(endpoint: HttpEndpoint) -> None:
    port = endpoint.port
    for host in [f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"]:
        assert call(endpoint, "GET", "/api/status", host=host)[0] == 200, host
    # A page whose DNS name was rebound to 127.0.0.1 gets nothing.
    for host in [f"evil.example:{port}", "evil.example", ""]:
        assert call(endpoint, "GET", "/api/status", host=host)[0] == 421, host


def test_journal_away_is_503_and_says_so(endpoint: HttpEndpoint) -> None:
    reports = endpoint.reports
    assert isinstance(reports, StubReports)
    reports.fail = True
    for path in ("/metrics", "/api/status"):
        status, _, body = call(endpoint, "GET", path)
        assert status == 503 and b"journal unavailable" in body
    assert call(endpoint, "GET", "/")[0] == 200  # the page itself says the daemon is away


def test_an_address_in_use_is_a_config_error() -> None:
    reports = StubReports()
    first = HttpEndpoint(ListenAddress("127.0.0.1", 0), reports, Metrics())
    first.start()
    try:
        second = HttpEndpoint(ListenAddress("127.0.0.1", first.port), StubReports(), Metrics())
        with pytest.raises(ConfigError, match=r"http_listen 127\.0\.0\.1:\d+: .*already in use"):
            second.start()
    finally:
        first.stop()


# ---- the served document ----------------------------------------------------------------------


def test_reports_read_the_journal_as_status_does(tmp_path: Path) -> None:
    config = _config(tmp_path, f'state_dir = "{tmp_path / "state"}"')
    reports = StatusReports(lambda: config)
    try:
        journal = open_journal(config.state_dir)
        try:
            journal.enqueue(Observation(str(tmp_path / "a.mp4"), str(tmp_path), 10, 1), "test")
            served = reports.document()
            shown = status_document(
                config.state_dir, journal, probe(config.state_dir),
                bandwidth=bandwidth_document(config),
            )  # fmt: skip
        finally:
            journal.close()
        assert served == shown and served["counts"]["queued"] == 1
    finally:
        reports.close()
    with pytest.raises(JournalError, match="stopping"):  # a request that raced the stop
        reports.document()
