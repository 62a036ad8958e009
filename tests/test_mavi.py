"""MaviClient against the fake MAVI server, plus unit tests of the response interpreters."""

from __future__ import annotations

import email.utils
import errno
import hashlib
import http.server
import io
import json
import math
import random
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from fakemavi import FakeMavi, Fault
from mavi_uploader.core.decisions import NOT_FOUND
from mavi_uploader.mavi import client as mavi_module
from mavi_uploader.mavi.client import (
    AssetStatus,
    AuthProblem,
    MaviClient,
    MaviError,
    PermanentError,
    RateLimited,
    SignedUpload,
    SignedUrlRejected,
    TransientError,
    interpret_api_response,
    interpret_storage_response,
)
from mavi_uploader.mavi.multipart import FileShrank
from mavi_uploader.mavi.ratelimit import RateLimiter, Stopped
from mavi_uploader.redaction import register_secret

KEY = "mavi-client-test-key-7c1f9a2b"
MIB = 1024 * 1024
TIMEOUT = (2.0, 2.0)

# The service registers the key before it builds a client; the tests do the same.
register_secret(KEY)


class RecordingLimiter(RateLimiter):
    """A real limiter that remembers every acquire and penalty."""

    def __init__(self, rate: float = 0, **kwargs: Any) -> None:
        super().__init__(rate, **kwargs)
        self.acquired: list[str] = []
        self.penalties: list[tuple[str, float]] = []

    def acquire(self, endpoint: str) -> None:
        self.acquired.append(endpoint)
        super().acquire(endpoint)

    def penalize(self, endpoint: str, seconds: float) -> None:
        self.penalties.append((endpoint, seconds))
        super().penalize(endpoint, seconds)


class NoWaitLimiter(RecordingLimiter):
    """Records penalties but never waits, so backoff arithmetic is testable without time."""

    def acquire(self, endpoint: str) -> None:
        self.acquired.append(endpoint)


@pytest.fixture
def mavi() -> Iterator[FakeMavi]:
    with FakeMavi(KEY) as server:
        yield server


def make_client(server: FakeMavi, **kwargs: Any) -> MaviClient:
    kwargs.setdefault("limiter", RateLimiter(0))
    kwargs.setdefault("timeout", TIMEOUT)
    return MaviClient(server.api_base, kwargs.pop("key", KEY), **kwargs)


def write_file(path: Path, size: int, seed: int = 1) -> bytes:
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data


def signature_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["X-Goog-Signature"][0]


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_safe(exc: BaseException, *secrets: str) -> None:
    """Neither the message nor the printed traceback may quote a credential."""
    shown = []
    current: BaseException | None = exc
    while current is not None:  # what a logged traceback prints: the exception and its chain
        shown += traceback.format_exception_only(type(current), current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    for secret in (KEY, *secrets):
        assert secret not in "".join(shown)


# ----------------------------------------------------------------------------- sign


def test_sign_returns_new_asset_and_signed_url(mavi: FakeMavi) -> None:
    signed = make_client(mavi).sign("clip one.mp4")

    assert isinstance(signed, SignedUpload)
    assert signed.asset_id.startswith("re_")
    assert signed.asset_id in mavi.assets
    assert mavi.assets[signed.asset_id].filename == "clip one.mp4"
    assert signed.url.startswith(f"http://127.0.0.1:{mavi.port}/bucket/{signed.asset_id}/")
    assert signature_of(signed.url)
    [call] = mavi.calls_to("sign")
    assert (call.method, call.status, call.had_authorization) == ("POST", 200, True)


def test_sign_accepts_string_0000_success_code() -> None:
    with FakeMavi(KEY, code_style="0000") as server:
        client = make_client(server)
        signed = client.sign("a.mp4")
        assert signed.asset_id in server.assets
        assert client.metadata(signed.asset_id).upload_status == "WAITING"


def test_sign_expires_at_is_sign_time_plus_expires_in(mavi: FakeMavi) -> None:
    before = time.time()
    signed = make_client(mavi).sign("a.mp4")
    after = time.time()
    assert before + 93600 - 1 <= signed.expires_at <= after + 93600 + 1

    mavi.set_url_ttl(120)
    fixed = make_client(mavi, clock=lambda: 1_000_000.0).sign("b.mp4")
    assert fixed.expires_at == pytest.approx(1_000_000.0 + 120)


def test_two_signs_give_distinct_assets(mavi: FakeMavi) -> None:
    client = make_client(mavi)
    first, second = client.sign("a.mp4"), client.sign("a.mp4")
    assert first.asset_id != second.asset_id
    assert signature_of(first.url) != signature_of(second.url)


# --------------------------------------------------------------------------- upload


@pytest.mark.parametrize("filename", ["plain.mp4", "my clip été 日本.mov"])
def test_upload_streams_exact_bytes_without_authorization(
    mavi: FakeMavi, tmp_path: Path, filename: str
) -> None:
    size = 3 * MIB + 12345
    path = tmp_path / "video.bin"
    data = write_file(path, size)
    client = make_client(mavi)
    signed = client.sign(filename)
    chunks: list[int] = []

    client.upload(signed.url, path, size, filename, on_chunk=chunks.append)

    record = mavi.uploads[signed.asset_id]
    assert record.size == size
    assert record.sha256 == hashlib.sha256(data).hexdigest()
    assert mavi.received_sha256s() == [hashlib.sha256(data).hexdigest()]
    assert record.filename == filename  # as signed, from the URL path
    if filename.isascii():  # the fake does not decode UTF-8 headers; see test_multipart
        assert record.part_filename == filename
    assert not record.chunked  # exact Content-Length, not chunked encoding
    assert sum(chunks) == size
    [call] = mavi.calls_to("storage")
    assert call.method == "POST"
    assert call.status == 204
    assert call.had_authorization is False


def test_upload_sends_only_size_bytes_of_a_growing_file(mavi: FakeMavi, tmp_path: Path) -> None:
    path = tmp_path / "growing.mp4"
    data = write_file(path, 2 * MIB)
    size = MIB + 7
    client = make_client(mavi)
    signed = client.sign("growing.mp4")

    client.upload(signed.url, path, size, "growing.mp4")

    assert mavi.uploads[signed.asset_id].size == size
    assert mavi.received_sha256s() == [hashlib.sha256(data[:size]).hexdigest()]


def test_upload_of_a_shrunk_file_raises_file_shrank(mavi: FakeMavi, tmp_path: Path) -> None:
    path = tmp_path / "shrunk.mp4"
    write_file(path, MIB)
    client = make_client(mavi)
    signed = client.sign("shrunk.mp4")

    with pytest.raises(FileShrank):
        client.upload(signed.url, path, 2 * MIB, "shrunk.mp4")

    assert mavi.received_sha256s() == []


def test_upload_of_a_missing_file_raises_oserror_before_sending(
    mavi: FakeMavi, tmp_path: Path
) -> None:
    client = make_client(mavi)
    signed = client.sign("gone.mp4")
    with pytest.raises(FileNotFoundError):
        client.upload(signed.url, tmp_path / "gone.mp4", 10, "gone.mp4")
    assert mavi.calls_to("storage") == []


def test_read_error_mid_upload_is_an_oserror_not_a_network_error(
    mavi: FakeMavi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bad-sector.mp4"
    write_file(path, 3 * MIB)
    client = make_client(mavi)
    signed = client.sign("bad-sector.mp4")

    class FailingFile(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            if self.tell() >= MIB:
                raise OSError(errno.EIO, "Input/output error")
            return super().read(size)

    def failing_open(file: Path, mode: str = "r") -> FailingFile:
        assert mode == "rb"
        return FailingFile(Path(file).read_bytes())

    monkeypatch.setattr(mavi_module, "open", failing_open, raising=False)
    with pytest.raises(OSError) as info:
        client.upload(signed.url, path, 3 * MIB, "bad-sector.mp4")
    assert info.value.errno == errno.EIO


def test_upload_aborted_by_on_chunk_propagates(mavi: FakeMavi, tmp_path: Path) -> None:
    class Cancelled(Exception):
        pass

    path = tmp_path / "big.mp4"
    write_file(path, 3 * MIB)
    client = make_client(mavi)
    signed = client.sign("big.mp4")

    def on_chunk(_n: int) -> None:
        raise Cancelled

    with pytest.raises(Cancelled):
        client.upload(signed.url, path, 3 * MIB, "big.mp4", on_chunk=on_chunk)

    assert mavi.wait_until(lambda: len(mavi.calls_to("storage")) == 1, timeout=5)
    assert mavi.calls_to("storage")[0].status == 0  # the fake saw an incomplete body
    assert mavi.received_sha256s() == []


# ------------------------------------------------------------------------- metadata


def test_metadata_returns_status_and_size(mavi: FakeMavi, tmp_path: Path) -> None:
    path = tmp_path / "a.mp4"
    write_file(path, 4321)
    mavi.set_metadata_script(["WAITING", "UPLOADING", "SUCCESS"])
    client = make_client(mavi)
    signed = client.sign("a.mp4")
    client.upload(signed.url, path, 4321, "a.mp4")

    statuses = [client.metadata(signed.asset_id) for _ in range(4)]

    assert statuses == [
        AssetStatus("WAITING", 4321),
        AssetStatus("UPLOADING", 4321),
        AssetStatus("SUCCESS", 4321),
        AssetStatus("SUCCESS", 4321),
    ]
    calls = mavi.calls_to("metadata")
    assert len(calls) == 4
    assert all(c.method == "GET" and c.had_authorization for c in calls)


def test_metadata_reports_failed(mavi: FakeMavi, tmp_path: Path) -> None:
    path = tmp_path / "a.mp4"
    write_file(path, 100)
    mavi.set_metadata_script(["FAILED"])
    client = make_client(mavi)
    signed = client.sign("a.mp4")
    client.upload(signed.url, path, 100, "a.mp4")
    assert client.metadata(signed.asset_id) == AssetStatus("FAILED", 100)


def fake_response(
    status: int, body: Any, headers: dict[str, str] | None = None, reason: str = ""
) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.reason = reason
    response.headers = CaseInsensitiveDict(headers or {})
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response._content = raw
    response.encoding = "utf-8"
    return response


def ok_body(data: Any, code: Any = 200) -> dict[str, Any]:
    return {"code": code, "msg": "success", "data": data, "success": True, "failed": False}


def stub_client(monkeypatch: pytest.MonkeyPatch, response: requests.Response) -> MaviClient:
    client = MaviClient("http://127.0.0.1:9/serve/api/v2", KEY, limiter=NoWaitLimiter())
    monkeypatch.setattr(client, "_request", lambda *_a, **_k: response)
    return client


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ({"upload_status": "success", "file_size": "12"}, AssetStatus("SUCCESS", 12)),
        ({"upload_status": "SUCCESS"}, AssetStatus("SUCCESS", None)),
        ({"upload_status": "UPLOADING", "file_size": None}, AssetStatus("UPLOADING", None)),
        ({"upload_status": "WAITING", "file_size": "n/a"}, AssetStatus("WAITING", None)),
    ],
)
def test_metadata_parsing(
    monkeypatch: pytest.MonkeyPatch, resource: dict[str, Any], expected: AssetStatus
) -> None:
    client = stub_client(monkeypatch, fake_response(200, ok_body({"resource": [resource]})))
    assert client.metadata("re_1") == expected


def test_metadata_not_found_is_an_answer(mavi: FakeMavi, monkeypatch: pytest.MonkeyPatch) -> None:
    mavi.inject("metadata", Fault("status", 404))
    assert make_client(mavi).metadata("re_1") == AssetStatus(NOT_FOUND, None)
    # HTTP 200 whose body code says 404, and an empty resource list, mean the same
    not_found = {"code": 404, "msg": "not found", "data": None}
    client = stub_client(monkeypatch, fake_response(200, not_found))
    assert client.metadata("re_1") == AssetStatus(NOT_FOUND, None)
    empty = fake_response(200, ok_body({"total": 0, "resource": []}))
    client = stub_client(monkeypatch, empty)
    assert client.metadata("re_1") == AssetStatus(NOT_FOUND, None)


@pytest.mark.parametrize(
    "data",
    [{"resource": None}, {"resource": [{"file_size": "3"}]}, {}],
)
def test_metadata_without_a_status_is_transient(
    monkeypatch: pytest.MonkeyPatch, data: dict[str, Any]
) -> None:
    client = stub_client(monkeypatch, fake_response(200, ok_body(data)))
    with pytest.raises(TransientError):
        client.metadata("re_1")


@pytest.mark.parametrize(
    "data",
    [
        {"signed_url": "https://storage.example/x"},
        {"asset_id": "", "signed_url": "https://storage.example/x"},
        {"asset_id": "re_1"},
        {"asset_id": "re_1", "signed_url": "file:///etc/passwd"},
        {"asset_id": "re_1", "signed_url": 5},
    ],
)
def test_sign_answer_without_usable_asset_or_url_is_transient(
    monkeypatch: pytest.MonkeyPatch, data: dict[str, Any]
) -> None:
    client = stub_client(monkeypatch, fake_response(200, ok_body(data)))
    with pytest.raises(TransientError):
        client.sign("a.mp4")


@pytest.mark.parametrize(("expires_in", "expected"), [("7200", 7200.0), (None, 3600.0)])
def test_sign_expires_in_parsing(
    monkeypatch: pytest.MonkeyPatch, expires_in: Any, expected: float
) -> None:
    data = {"asset_id": "re_1", "signed_url": "https://s.example/b?X-Goog-Signature=ab"}
    data["expires_in"] = expires_in
    client = stub_client(monkeypatch, fake_response(200, ok_body(data)))
    client._clock = lambda: 50.0
    assert client.sign("a.mp4").expires_at == 50.0 + expected


# ------------------------------------------------------------------- outcome mapping


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (401, "check MAVI_API_KEY"),
        (402, "balance is exhausted"),
        (403, "disabled or this IP is not allowed"),
    ],
)
@pytest.mark.parametrize("endpoint", ["sign", "metadata"])
def test_auth_statuses_are_auth_problems(
    mavi: FakeMavi, status: int, hint: str, endpoint: str
) -> None:
    mavi.inject(endpoint, Fault("status", status))
    client = make_client(mavi)
    with pytest.raises(AuthProblem) as info:
        if endpoint == "sign":
            client.sign("a.mp4")
        else:
            client.metadata("re_1")
    assert hint in str(info.value)
    assert str(status) in str(info.value)
    assert_safe(info.value)
    assert len(mavi.calls_to(endpoint)) == 1  # not retried


def test_wrong_key_and_account_state_are_auth_problems(mavi: FakeMavi) -> None:
    with pytest.raises(AuthProblem, match="check MAVI_API_KEY") as info:
        make_client(mavi, key="another-wrong-key-123").sign("a.mp4")
    assert_safe(info.value, "another-wrong-key-123")

    mavi.api_status_override = 402
    with pytest.raises(AuthProblem, match="balance"):
        make_client(mavi).sign("a.mp4")
    mavi.api_status_override = 403
    with pytest.raises(AuthProblem, match="IP"):
        make_client(mavi).sign("a.mp4")


def test_429_with_retry_after_is_retried_after_waiting(mavi: FakeMavi) -> None:
    mavi.inject("sign", Fault("rate_limit_429", 429, retry_after=0.3))
    limiter = RecordingLimiter(100)
    signed = make_client(mavi, limiter=limiter).sign("a.mp4")

    assert signed.asset_id in mavi.assets
    calls = mavi.calls_to("sign")
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].time - calls[0].time >= 0.25
    assert limiter.penalties == [("sign", 0.3)]
    assert limiter.acquired == ["sign", "sign"]


def test_400_exceeded_the_limit_is_retried(mavi: FakeMavi) -> None:
    mavi.inject("metadata", Fault("rate_limit_400", 400, retry_after=0.2))
    limiter = RecordingLimiter(100)
    client = make_client(mavi, limiter=limiter)
    signed = client.sign("a.mp4")

    assert client.metadata(signed.asset_id).upload_status == "WAITING"

    calls = mavi.calls_to("metadata")
    assert [c.status for c in calls] == [400, 200]
    assert calls[1].time - calls[0].time >= 0.15
    assert limiter.penalties == [("metadata", 0.2)]


def test_storage_429_is_retried_and_the_file_sent_whole_again(
    mavi: FakeMavi, tmp_path: Path
) -> None:
    path = tmp_path / "a.mp4"
    data = write_file(path, MIB + 5)
    mavi.inject("storage", Fault("rate_limit_429", 429, retry_after=0.1))
    limiter = RecordingLimiter(100)
    client = make_client(mavi, limiter=limiter)
    signed = client.sign("a.mp4")

    client.upload(signed.url, path, MIB + 5, "a.mp4")

    assert [c.status for c in mavi.calls_to("storage")] == [429, 204]
    assert mavi.received_sha256s() == [hashlib.sha256(data).hexdigest()]
    assert limiter.penalties == [("storage", 0.1)]


def test_rate_limit_without_retry_after_backs_off_exponentially(mavi: FakeMavi) -> None:
    mavi.inject("sign", Fault("rate_limit_400", 400), times=2)
    mavi.inject("sign", Fault("rate_limit_429", 429), times=2)
    limiter = NoWaitLimiter()
    make_client(mavi, limiter=limiter).sign("a.mp4")

    assert limiter.penalties == [("sign", 1.0), ("sign", 2.0), ("sign", 4.0), ("sign", 8.0)]
    assert [c.status for c in mavi.calls_to("sign")] == [400, 400, 429, 429, 200]


def test_stopping_interrupts_the_rate_limit_wait(mavi: FakeMavi) -> None:
    mavi.inject("sign", Fault("rate_limit_429", 429, retry_after=30))
    stop = threading.Event()
    stop.set()
    started = time.monotonic()
    with pytest.raises(Stopped):
        make_client(mavi, limiter=RateLimiter(100, stop=stop)).sign("a.mp4")
    assert time.monotonic() - started < 5
    assert len(mavi.calls_to("sign")) == 1


# A metadata 404 is an answer, not an error: see test_metadata_not_found_is_an_answer.
@pytest.mark.parametrize(
    ("endpoint", "status"),
    [("sign", s) for s in (400, 404, 405, 409, 415)]
    + [("metadata", s) for s in (400, 405, 409, 415)],
)
def test_other_client_errors_are_permanent(mavi: FakeMavi, status: int, endpoint: str) -> None:
    mavi.inject(endpoint, Fault("status", status))
    client = make_client(mavi)
    with pytest.raises(PermanentError) as info:
        if endpoint == "sign":
            client.sign("a.mp4")
        else:
            client.metadata("re_1")
    assert str(status) in str(info.value)
    assert_safe(info.value)
    assert len(mavi.calls_to(endpoint)) == 1


def test_sign_without_filename_is_permanent(mavi: FakeMavi) -> None:
    with pytest.raises(PermanentError, match="original_filename"):
        make_client(mavi).sign("")


@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", 500),
        Fault("status", 502),
        Fault("status", 503),
        Fault("html", 503),
        Fault("html", 200),
        Fault("malformed"),
        Fault("drop"),
    ],
    ids=["500", "502", "503", "html503", "html200", "malformed", "drop"],
)
@pytest.mark.parametrize("endpoint", ["sign", "metadata"])
def test_server_trouble_is_transient(mavi: FakeMavi, fault: Fault, endpoint: str) -> None:
    mavi.inject(endpoint, fault)
    client = make_client(mavi)
    with pytest.raises(TransientError) as info:
        if endpoint == "sign":
            client.sign("a.mp4")
        else:
            client.metadata("re_1")
    assert not isinstance(info.value, (PermanentError, AuthProblem))
    assert_safe(info.value)


def test_slow_answer_times_out_as_transient(mavi: FakeMavi) -> None:
    mavi.inject("sign", Fault("hold"))  # no answer until the test releases it
    client = make_client(mavi, timeout=(1.0, 0.3))
    started = time.monotonic()
    with pytest.raises(TransientError, match="timed out"):
        client.sign("a.mp4")
    assert time.monotonic() - started < 2.5  # the read timeout, not a wait for the answer
    assert mavi.wait_until(lambda: mavi.holding == 1)  # the answer is still held
    mavi.release_held()


def test_closed_port_is_a_network_error() -> None:
    client = MaviClient(
        f"http://127.0.0.1:{closed_port()}/serve/api/v2",
        KEY,
        limiter=RateLimiter(0),
        timeout=TIMEOUT,
    )
    with pytest.raises(TransientError) as info:
        client.sign("a.mp4")
    assert info.value.network is True
    assert_safe(info.value)


def test_upload_to_closed_port_does_not_leak_the_signature(mavi: FakeMavi, tmp_path: Path) -> None:
    path = tmp_path / "a.mp4"
    write_file(path, 1000)
    client = make_client(mavi)
    signed = client.sign("a.mp4")
    dead = signed.url.replace(f":{mavi.port}/", f":{closed_port()}/")

    with pytest.raises(TransientError) as info:
        client.upload(dead, path, 1000, "a.mp4")

    assert info.value.network is True
    assert f"/bucket/{signed.asset_id}/a.mp4" in str(info.value)
    assert_safe(info.value, signature_of(signed.url), "fake%2Fcred")


# -------------------------------------------------------------------------- storage


def sign_and_upload(mavi: FakeMavi, tmp_path: Path, size: int = 1000) -> BaseException:
    path = tmp_path / "a.mp4"
    write_file(path, size)
    client = make_client(mavi)
    signed = client.sign("a.mp4")
    with pytest.raises(MaviError) as info:
        client.upload(signed.url, path, size, "a.mp4")
    assert_safe(info.value, signature_of(signed.url))
    assert mavi.received_sha256s() == []
    return info.value


def test_storage_expired_token_asks_for_a_new_url(mavi: FakeMavi, tmp_path: Path) -> None:
    mavi.inject("storage", Fault("expired"))
    exc = sign_and_upload(mavi, tmp_path)
    assert isinstance(exc, SignedUrlRejected)
    assert exc.expired is True


def test_storage_really_expired_url(mavi: FakeMavi, tmp_path: Path) -> None:
    path = tmp_path / "a.mp4"
    write_file(path, 1000)
    client = make_client(mavi)
    signed = client.sign("a.mp4")
    mavi.expire_all_urls()
    with pytest.raises(SignedUrlRejected) as info:
        client.upload(signed.url, path, 1000, "a.mp4")
    assert info.value.expired is True


def test_storage_signature_mismatch_is_not_expiry(mavi: FakeMavi, tmp_path: Path) -> None:
    mavi.inject("storage", Fault("xml_error", 403))
    exc = sign_and_upload(mavi, tmp_path)
    assert isinstance(exc, SignedUrlRejected)
    assert exc.expired is False
    assert "SignatureDoesNotMatch" in str(exc)


def test_storage_tampered_signature_is_rejected(mavi: FakeMavi, tmp_path: Path) -> None:
    path = tmp_path / "a.mp4"
    write_file(path, 1000)
    client = make_client(mavi)
    signed = client.sign("a.mp4")
    sig = signature_of(signed.url)
    tampered = signed.url.replace(sig, "0" * len(sig))
    with pytest.raises(SignedUrlRejected) as info:
        client.upload(tampered, path, 1000, "a.mp4")
    assert info.value.expired is False
    assert_safe(info.value, sig)


@pytest.mark.parametrize(
    "fault",
    [Fault("status", 500), Fault("status", 503), Fault("html", 502), Fault("drop")],
    ids=["500", "503", "html502", "drop"],
)
def test_storage_server_trouble_is_transient(mavi: FakeMavi, tmp_path: Path, fault: Fault) -> None:
    mavi.inject("storage", fault)
    exc = sign_and_upload(mavi, tmp_path, size=2 * MIB)
    assert isinstance(exc, TransientError)


def test_storage_slow_answer_is_transient(mavi: FakeMavi, tmp_path: Path) -> None:
    path = tmp_path / "a.mp4"
    write_file(path, 1000)
    mavi.inject("storage", Fault("hold"))  # takes the body, answers once released
    client = make_client(mavi, timeout=(1.0, 0.3))
    signed = client.sign("a.mp4")
    with pytest.raises(TransientError, match="timed out") as info:
        client.upload(signed.url, path, 1000, "a.mp4")
    assert mavi.wait_until(lambda: mavi.holding == 1)
    mavi.release_held()
    assert_safe(info.value, signature_of(signed.url))


# ------------------------------------------------------- interpret_api_response (unit)


@pytest.mark.parametrize("code", [200, "200", "0000", 0])
def test_api_success_codes(code: Any) -> None:
    data = {"asset_id": "re_1"}
    assert interpret_api_response(fake_response(200, ok_body(data, code)), "sign") == data


def test_a_success_code_contradicted_by_the_flags_says_so() -> None:
    body = {"code": 200, "msg": "success", "data": {"a": 1}, "success": False, "failed": True}
    with pytest.raises(TransientError) as info:
        interpret_api_response(fake_response(200, body), "sign")
    assert info.value.reason == "sign: answer 200 'success' but success=False, failed=True"


@pytest.mark.parametrize(
    "body",
    [
        {"code": 200, "msg": "success", "data": {"a": 1}, "success": False},
        {"code": 200, "msg": "success", "data": {"a": 1}, "failed": True},
        {"code": "0000", "msg": "success", "data": {"a": 1}, "success": False, "failed": True},
        {"code": 200, "msg": "success", "data": None, "success": True},
        {"code": 200, "msg": "success", "data": [1], "success": True},
        {"code": 500, "msg": "oops", "data": {"a": 1}},
        {"msg": "no code at all", "data": {"a": 1}},
    ],
)
def test_api_200_that_is_not_a_success_is_transient(body: dict[str, Any]) -> None:
    with pytest.raises(TransientError):
        interpret_api_response(fake_response(200, body), "sign")


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b"<html>oops</html>"),
        (502, b"<html><body>Bad Gateway</body></html>"),
        (200, b""),
        (200, b"[1, 2]"),
        (200, b'"text"'),
        (500, {"code": 500, "msg": "Internal Server Error", "data": None}),
        (503, {"code": 503, "msg": "unavailable"}),
        (408, {"code": 408, "msg": "timeout"}),
    ],
)
def test_api_garbage_and_server_errors_are_transient(status: int, body: Any) -> None:
    with pytest.raises(TransientError):
        interpret_api_response(fake_response(status, body), "metadata")


@pytest.mark.parametrize("status", [401, 402, 403])
def test_api_auth_status_wins_even_with_a_garbage_body(status: int) -> None:
    with pytest.raises(AuthProblem):
        interpret_api_response(fake_response(status, b"<html>denied</html>"), "sign")


@pytest.mark.parametrize("code", [401, 402, 403])
def test_api_auth_code_in_a_200_body(code: int) -> None:
    body = {"code": code, "msg": "nope", "data": None, "success": False, "failed": True}
    with pytest.raises(AuthProblem):
        interpret_api_response(fake_response(200, body), "sign")


def test_api_429_carries_retry_after() -> None:
    response = fake_response(429, b"not even json", {"Retry-After": "7"})
    with pytest.raises(RateLimited) as info:
        interpret_api_response(response, "sign")
    assert info.value.retry_after == 7.0


def test_retry_after_as_a_future_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    response = fake_response(429, {"code": 429}, {"Retry-After": when})
    with pytest.raises(RateLimited) as info:
        interpret_api_response(response, "sign")
    assert info.value.retry_after is not None and 25 < info.value.retry_after <= 30


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("2.5", 2.5),
        ("-3", 0.0),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # an HTTP date in the past: go ahead
    ],
)
def test_api_retry_after_parsing(header: str | None, expected: float | None) -> None:
    headers = {"Retry-After": header} if header is not None else {}
    with pytest.raises(RateLimited) as info:
        interpret_api_response(fake_response(429, {"code": 429}, headers), "sign")
    assert info.value.retry_after == expected


@pytest.mark.parametrize(
    "header",
    [
        "nan",
        "inf",
        "1e12",
    ],
)
def test_api_absurd_retry_after_is_not_taken_at_face_value(header: str) -> None:
    with pytest.raises(RateLimited) as info:
        interpret_api_response(fake_response(429, {"code": 429}, {"Retry-After": header}), "s")
    value = info.value.retry_after
    assert value is None or (math.isfinite(value) and 0 <= value <= threading.TIMEOUT_MAX)


def test_infinite_retry_after_does_not_crash_the_client(mavi: FakeMavi) -> None:
    mavi.inject("sign", Fault("rate_limit_429", 429, retry_after=float("inf")))
    limiter = NoWaitLimiter()
    make_client(mavi, limiter=limiter).sign("a.mp4")
    [(_endpoint, penalty)] = limiter.penalties
    # A real RateLimiter would hand this to Event.wait: inf raises OverflowError there.
    assert math.isfinite(penalty)
    assert penalty <= threading.TIMEOUT_MAX


@pytest.mark.parametrize(
    "msg", ["Request has exceeded the limit.", "request HAS EXCEEDED THE LIMIT"]
)
@pytest.mark.parametrize("status", [400, 200])
def test_api_exceeded_the_limit_message_is_rate_limited(msg: str, status: int) -> None:
    body = {"code": 400, "msg": msg, "data": None, "success": False, "failed": True}
    with pytest.raises(RateLimited):
        interpret_api_response(fake_response(status, body), "sign")


@pytest.mark.parametrize("code", [400, 405, 409, 415, 422])
def test_api_other_client_errors_are_permanent(code: int) -> None:
    body = {"code": code, "msg": "Bad thing", "data": None, "success": False, "failed": True}
    with pytest.raises(PermanentError, match=str(code)):
        interpret_api_response(fake_response(code, body), "sign")


def test_api_body_code_wins_over_a_generic_http_status() -> None:
    body = {"code": 409, "msg": "duplicate", "data": None}
    with pytest.raises(PermanentError, match="409"):
        interpret_api_response(fake_response(400, body), "sign")


# --------------------------------------------------- interpret_storage_response (unit)


def xml(code: str, message: str) -> bytes:
    error = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return f"<?xml version='1.0'?>{error}".encode()


@pytest.mark.parametrize("status", [200, 201, 204])
def test_storage_2xx_is_success(status: int) -> None:
    interpret_storage_response(fake_response(status, b""))  # no exception: accepted


@pytest.mark.parametrize(
    ("status", "body", "expired"),
    [
        (400, xml("ExpiredToken", "The provided token has expired."), True),
        (403, xml("AccessDenied", "Request has expired"), True),
        (403, xml("SignatureDoesNotMatch", "The request signature we calculated..."), False),
        (400, xml("MalformedSecurityHeader", "Bad header"), False),
        (400, xml("InvalidArgument", "Bad argument"), False),
        (404, b"", False),
    ],
)
def test_storage_rejections(status: int, body: bytes, expired: bool) -> None:
    with pytest.raises(SignedUrlRejected) as info:
        interpret_storage_response(fake_response(status, body))
    assert info.value.expired is expired
    if not expired and body:
        code = body.split(b"<Code>")[1].split(b"</Code>")[0].decode()
        assert code in str(info.value)


@pytest.mark.parametrize("status", [408, 500, 502, 503])
def test_storage_server_errors_are_transient(status: int) -> None:
    with pytest.raises(TransientError):
        interpret_storage_response(fake_response(status, xml("InternalError", "x")))


def test_storage_429_is_rate_limited() -> None:
    response = fake_response(429, xml("SlowDown", "Slow down"), {"Retry-After": "4"})
    with pytest.raises(RateLimited) as info:
        interpret_storage_response(response)
    assert info.value.retry_after == 4.0


def test_error_messages_redact_signed_urls() -> None:
    url = "https://storage.googleapis.com/b/re_1/a.mp4?X-Goog-Signature=cafe0123deadbeef"
    err = TransientError(f"storage upload failed for {url} and {KEY}")
    assert "cafe0123deadbeef" not in str(err)
    assert KEY not in str(err)
    assert "https://storage.googleapis.com/b/re_1/a.mp4" in err.reason


def test_storage_400_exceeded_the_limit_is_rate_limited_not_a_rejection() -> None:
    # Two of these in a row used to fail the file: a rejected URL, signed again, rejected.
    body = b'{"code":400,"msg":"Request has exceeded the limit.","data":null}'
    with pytest.raises(RateLimited):
        interpret_storage_response(fake_response(400, body))


class _Storage(http.server.BaseHTTPRequestHandler):
    """A bare storage endpoint for behaviours the fake server has no fault for."""

    posts: ClassVar[list[int]] = []

    def log_message(self, *args: Any) -> None:
        pass


class _Redirecting(_Storage):
    """Answers every upload with a 307 to an unsigned URL of its own."""

    def do_POST(self) -> None:
        self.posts.append(len(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
        self.send_response(307)
        self.send_header("Location", f"http://{self.headers['Host']}/other")
        self.send_header("Content-Length", "0")
        self.end_headers()


class _HangsUpAfterTheBody(_Storage):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.close_connection = True  # takes every byte, answers nothing


def upload_to(handler: type[_Storage], tmp_path: Path) -> None:
    """Upload a 10 kB file to a real server on 127.0.0.1 run by `handler`."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"x" * 10_000)
    try:
        client = MaviClient("http://127.0.0.1:1/api", "k" * 20, timeout=(5, 5))
        url = f"http://127.0.0.1:{server.server_address[1]}/bucket/a.mp4?X-Goog-Signature=s"
        client.upload(url, clip, 10_000, "a.mp4")
    finally:
        server.shutdown()
        server.server_close()


def test_a_storage_redirect_is_not_followed(tmp_path: Path) -> None:
    """requests would re-send an already drained body stream (and to an unsigned URL)."""
    _Redirecting.posts = []
    with pytest.raises(TransientError, match="redirects are not followed"):
        upload_to(_Redirecting, tmp_path)
    assert len(_Redirecting.posts) == 1 and _Redirecting.posts[0] > 10_000


def test_storage_that_hangs_up_after_the_whole_body_is_a_server_fault(tmp_path: Path) -> None:
    """Not 'offline' (which never fails a file): retried, but counted towards giving up."""
    with pytest.raises(TransientError, match="after the whole body") as info:
        upload_to(_HangsUpAfterTheBody, tmp_path)
    assert not info.value.network
