"""Tests of the fake MAVI server itself (tests/fakemavi.py), with plain ``requests`` calls."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from fakemavi import CallRecord, FakeMavi, Fault
from fakemavi_wire import BadBody, MultipartFileSink

KEY = "k-123"
BOUNDARY = "b0undary-XyZ"
TIMEOUT = 10.0


# ------------------------------------------------------------------------------ helpers
@pytest.fixture
def fake() -> Iterator[FakeMavi]:
    with FakeMavi(KEY) as server:
        yield server


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def sign(
    http: requests.Session, fake: FakeMavi, name: str = "clip.mp4", key: str | None = KEY
) -> requests.Response:
    headers = {} if key is None else {"Authorization": key}
    return http.post(
        f"{fake.api_base}/upload/signed-url",
        json={"original_filename": name},
        headers=headers,
        timeout=TIMEOUT,
    )


def signed(http: requests.Session, fake: FakeMavi, name: str = "clip.mp4") -> dict[str, Any]:
    resp = sign(http, fake, name)
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()["data"]
    return data


def metadata(
    http: requests.Session, fake: FakeMavi, asset_id: str, key: str = KEY
) -> requests.Response:
    return http.get(
        f"{fake.api_base}/{asset_id}/metadata", headers={"Authorization": key}, timeout=TIMEOUT
    )


def status_of(http: requests.Session, fake: FakeMavi, asset_id: str) -> str:
    resp = metadata(http, fake, asset_id)
    assert resp.status_code == 200, resp.text
    resource = resp.json()["data"]["resource"]
    assert len(resource) == 1
    return str(resource[0]["upload_status"])


def upload(
    http: requests.Session, url: str, data: bytes, name: str = "clip.mp4", timeout: float = TIMEOUT
) -> requests.Response:
    return http.post(url, files={"file": (name, data, "video/mp4")}, timeout=timeout)


def multipart(
    data: bytes, boundary: str = BOUNDARY, *, field: str = "file", extra: bool = False
) -> bytes:
    """A multipart/form-data body holding ``data`` as ``field`` (plus decoy parts if extra)."""
    delim = b"--" + boundary.encode()
    decoy = delim + b'\r\nContent-Disposition: form-data; name="note"\r\n\r\nfile\r\n--x\r\n'
    head = (
        delim + b"\r\nContent-Disposition: form-data; name=\"" + field.encode()
        + b'"; filename="clip.mp4"\r\nContent-Type: video/mp4\r\n\r\n'
    )  # fmt: skip
    body = (decoy if extra else b"") + head + data + b"\r\n"
    return body + (decoy if extra else b"") + delim + b"--\r\n"


def post_raw(http: requests.Session, url: str, body: Any, boundary: str = BOUNDARY) -> Any:
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return http.post(url, data=body, headers=headers, timeout=TIMEOUT)


def tricky_bytes(size: int, boundary: str = BOUNDARY) -> bytes:
    """Bytes full of delimiter prefixes ("\\r\\n--" + partial boundary) and CR/LF noise."""
    pattern = b"".join(
        b"\r\n--" + boundary[:i].encode() + b"\r" + bytes([i]) for i in range(len(boundary))
    )
    pattern += b"\r\n-\r\r\n--\r\n\r\n--" + boundary[:-1].encode() + b"Q--\r\n"
    return (pattern * (size // len(pattern) + 1))[:size]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FileMultipart:
    """A lazily read multipart body over a file on disk, with a known length (no chunking)."""

    def __init__(self, path: Path, boundary: str = BOUNDARY) -> None:
        head, tail = multipart(b"", boundary).split(b"\r\n--" + boundary.encode() + b"--")
        self._length = len(head) + path.stat().st_size + len(tail) + len(boundary) + 6
        self._sources: list[Any] = [
            io.BytesIO(head),
            path.open("rb"),
            io.BytesIO(b"\r\n--" + boundary.encode() + b"--" + tail),
        ]

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        while self._sources:
            data: bytes = self._sources[0].read(size)
            if data:
                return data
            self._sources.pop(0).close()
        return b""


# ---------------------------------------------------------------------------- happy path
def test_happy_path_requests_files(fake: FakeMavi, http: requests.Session, tmp_path: Path) -> None:
    data = os.urandom(200_003)
    video = tmp_path / "clip.mp4"
    video.write_bytes(data)

    resp = sign(http, fake)
    assert resp.status_code == 200
    body = resp.json()
    assert (body["code"], body["msg"], body["success"], body["failed"]) == (
        200,
        "success",
        True,
        False,
    )
    aid, url = body["data"]["asset_id"], body["data"]["signed_url"]
    assert re.fullmatch(r"re_\d{18}", aid)
    assert body["data"]["expires_in"] == 93600
    assert url.startswith(f"http://127.0.0.1:{fake.port}/bucket/{aid}/clip.mp4?")
    query = parse_qs(urlsplit(url).query)
    assert query["X-Goog-Algorithm"] == ["GOOG4-RSA-SHA256"]
    assert query["X-Goog-Credential"] == ["fake/cred"]
    assert query["X-Goog-Expires"] == ["93600"]
    assert re.fullmatch(r"[0-9a-f]{64}", query["X-Goog-Signature"][0])
    assert fake.api_base == f"http://127.0.0.1:{fake.port}/serve/api/v2"

    assert status_of(http, fake, aid) == "WAITING"
    with video.open("rb") as fh:
        put = http.post(url, files={"file": ("clip.mp4", fh, "video/mp4")}, timeout=TIMEOUT)
    assert (put.status_code, put.content) == (204, b"")

    meta = metadata(http, fake, aid).json()
    assert meta["code"] == 200 and meta["success"] is True and meta["data"]["total"] == 1
    res = meta["data"]["resource"][0]
    assert res["asset_id"] == aid and res["original_filename"] == "clip.mp4"
    assert (res["upload_status"], res["file_size"], res["extension"]) == (
        "SUCCESS",
        str(len(data)),
        "mp4",
    )
    assert res["create_time"].isdigit() and res["modify_time"].isdigit()

    rec = fake.uploads[aid]
    assert (rec.asset_id, rec.filename, rec.size, rec.sha256) == (
        aid,
        "clip.mp4",
        len(data),
        sha(data),
    )
    assert rec.body == data and rec.content_type == "video/mp4" and rec.part_filename == "clip.mp4"
    assert rec.chunked is False
    assert fake.received_sha256s() == [sha(data)]
    assert [u.asset_id for u in fake.completed_by_filename()["clip.mp4"]] == [aid]
    assert fake.assets[aid].filename == "clip.mp4" and fake.assets[aid].upload_status == "SUCCESS"
    calls = fake.calls
    assert [c.endpoint for c in calls] == ["sign", "metadata", "storage", "metadata"]
    assert [c.status for c in calls] == [200, 200, 204, 200]
    assert [c.had_authorization for c in calls] == [True, True, False, True]
    assert calls[2].path == f"/bucket/{aid}/clip.mp4" and calls[2].method == "POST"
    assert all("?" not in c.path for c in calls)


def test_streamed_body_with_content_length(
    fake: FakeMavi, http: requests.Session, tmp_path: Path
) -> None:
    data = tricky_bytes(300_001)
    video = tmp_path / "big.mp4"
    video.write_bytes(data)
    d = signed(http, fake, "big.mp4")
    resp = post_raw(http, d["signed_url"], FileMultipart(video))
    assert resp.status_code == 204, resp.text
    rec = fake.uploads[d["asset_id"]]
    assert (rec.sha256, rec.size, rec.chunked) == (sha(data), len(data), False)


def test_chunked_generator_body(fake: FakeMavi, http: requests.Session) -> None:
    data = tricky_bytes(200_000)
    body = multipart(data, extra=True)
    sizes = [1, 7, 65536, 3, 100_000, 2, 1000]

    def pieces() -> Iterator[bytes]:
        pos = i = 0
        while pos < len(body):
            yield body[pos : pos + sizes[i % len(sizes)]]
            pos += sizes[i % len(sizes)]
            i += 1

    d = signed(http, fake)
    assert post_raw(http, d["signed_url"], pieces()).status_code == 204
    rec = fake.uploads[d["asset_id"]]
    assert (rec.sha256, rec.size, rec.chunked, rec.body) == (sha(data), len(data), True, data)


def test_store_bodies_false_and_odd_filename(http: requests.Session) -> None:
    name = "Clip ü #1?&x=y.MOV"
    with FakeMavi(KEY, store_bodies=False) as fake:
        d = signed(http, fake, name)
        assert (
            "/bucket/" + d["asset_id"] + "/Clip%20%C3%BC%20%231%3F%26x%3Dy.MOV?" in d["signed_url"]
        )
        assert upload(http, d["signed_url"], b"abc", name).status_code == 204
        rec = fake.uploads[d["asset_id"]]
        assert (rec.filename, rec.body, rec.sha256) == (name, None, sha(b"abc"))
        res = metadata(http, fake, d["asset_id"]).json()["data"]["resource"][0]
        assert (res["original_filename"], res["extension"]) == (name, "mov")


# ----------------------------------------------------------------------- API behaviour
def test_authorization(fake: FakeMavi, http: requests.Session) -> None:
    unauthorized = {
        "code": 401,
        "msg": "Unauthorized",
        "data": None,
        "success": False,
        "failed": True,
    }
    for key in ("wrong", None, f"Bearer {KEY}"):
        resp = sign(http, fake, key=key)
        assert (resp.status_code, resp.json()) == (401, unauthorized)
    aid = signed(http, fake)["asset_id"]
    assert metadata(http, fake, aid, key="wrong").status_code == 401
    fake.set_api_key("new-key")
    assert sign(http, fake).status_code == 401
    assert metadata(http, fake, aid).status_code == 401
    assert sign(http, fake, key="new-key").status_code == 200
    assert metadata(http, fake, aid, key="new-key").status_code == 200
    assert [c.had_authorization for c in fake.calls][:2] == [True, False]
    assert len(fake.assets) == 2


def test_sign_validation(fake: FakeMavi, http: requests.Session) -> None:
    url, auth = f"{fake.api_base}/upload/signed-url", {"Authorization": KEY}
    bad: list[dict[str, Any]] = [
        {},
        {"data": b"{nope"},
        {"json": {"original_filename": ""}},
        {"json": {"original_filename": 5}},
        {"json": {"name": "a.mp4"}},
        {"json": ["a.mp4"]},
    ]
    for kwargs in bad:
        resp = http.post(url, headers=auth, timeout=TIMEOUT, **kwargs)
        assert resp.status_code == 400
        assert resp.json()["code"] == 400 and resp.json()["msg"] and resp.json()["failed"] is True
    assert fake.assets == {}


def test_code_style_0000(http: requests.Session) -> None:
    with FakeMavi(KEY, code_style="0000") as fake:
        resp = sign(http, fake)
        assert resp.json()["code"] == "0000" and resp.json()["success"] is True
        aid = resp.json()["data"]["asset_id"]
        assert metadata(http, fake, aid).json()["code"] == "0000"
        assert sign(http, fake, key="bad").json()["code"] == 401
    with pytest.raises(ValueError, match="code_style"):
        FakeMavi(code_style="1")


def test_api_status_override(fake: FakeMavi, http: requests.Session) -> None:
    d = signed(http, fake)
    fake.api_status_override = 402
    expected = {
        "code": 402,
        "msg": "Payment Required",
        "data": None,
        "success": False,
        "failed": True,
    }
    for resp in (sign(http, fake), metadata(http, fake, d["asset_id"])):
        assert (resp.status_code, resp.json()) == (402, expected)
    assert upload(http, d["signed_url"], b"x").status_code == 204  # storage is not the API
    fake.api_status_override = 403
    assert sign(http, fake).json()["msg"] == "Forbidden"
    fake.api_status_override = None
    assert sign(http, fake).status_code == 200


def test_unknown_routes_and_assets(fake: FakeMavi, http: requests.Session) -> None:
    auth = {"Authorization": KEY}
    assert (
        http.get(f"{fake.api_base}/upload/signed-url", headers=auth, timeout=5).status_code == 404
    )
    assert http.get(f"http://127.0.0.1:{fake.port}/nope", timeout=5).status_code == 404
    assert http.delete(f"{fake.api_base}/re_1", headers=auth, timeout=5).status_code == 404
    resp = metadata(http, fake, "re_000000000000000001")
    assert (resp.status_code, resp.json()["code"], resp.json()["data"]) == (404, 404, None)
    assert [c.endpoint for c in fake.calls] == ["other", "other", "other", "metadata"]


# ------------------------------------------------------------------------- API faults
API_FAULTS = [
    (Fault("status", 503), 503, "application/json", "Service Unavailable"),
    (Fault("status", 500, retry_after=5), 500, "application/json", "Internal Server Error"),
    (Fault("html", 502), 502, "text/html", "<html>"),
    (Fault("malformed"), 200, "application/json", "{not json"),
    (Fault("rate_limit_429", 429, retry_after=2), 429, "application/json", "Too Many Requests"),
    (Fault("rate_limit_429", 429), 429, "application/json", "Too Many Requests"),
    (Fault("rate_limit_400", 400), 400, "application/json", "Request has exceeded the limit."),
]


@pytest.mark.parametrize("endpoint", ["sign", "metadata"])
@pytest.mark.parametrize(("fault", "status", "ctype", "text"), API_FAULTS)
def test_api_faults(
    fake: FakeMavi,
    http: requests.Session,
    endpoint: str,
    fault: Fault,
    status: int,
    ctype: str,
    text: str,
) -> None:
    aid = signed(http, fake)["asset_id"]

    def call() -> requests.Response:
        return sign(http, fake) if endpoint == "sign" else metadata(http, fake, aid)

    fake.inject(endpoint, fault)
    resp = call()
    assert resp.status_code == status and resp.headers["Content-Type"].startswith(ctype)
    assert text in resp.text
    retry_after = None if fault.retry_after is None else str(int(fault.retry_after))
    assert resp.headers.get("Retry-After") == retry_after
    if ctype == "application/json" and status != 200:
        assert resp.json() == {
            "code": status, "msg": text, "data": None, "success": False, "failed": True
        }  # fmt: skip
    else:
        with pytest.raises(ValueError):
            resp.json()
    assert fake.calls[-1].status == status and fake.calls[-1].endpoint == endpoint
    assert call().status_code == 200  # consumed
    assert len(fake.assets) == (2 if endpoint == "sign" else 1)  # the faulty sign made none


@pytest.mark.parametrize("endpoint", ["sign", "metadata"])
def test_api_drop(fake: FakeMavi, http: requests.Session, endpoint: str) -> None:
    aid = signed(http, fake)["asset_id"]
    fake.inject(endpoint, Fault("drop"))
    with pytest.raises(requests.ConnectionError):
        sign(http, fake) if endpoint == "sign" else metadata(http, fake, aid)
    assert fake.calls[-1].status == 0 and fake.calls[-1].endpoint == endpoint
    assert status_of(http, fake, aid) == "WAITING"
    assert len(fake.assets) == 1


def test_slow_fault_triggers_read_timeout(fake: FakeMavi, http: requests.Session) -> None:
    fake.inject("sign", Fault("slow", delay=0.6))
    t0 = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        http.post(
            f"{fake.api_base}/upload/signed-url",
            json={"original_filename": "a.mp4"},
            headers={"Authorization": KEY},
            timeout=(2, 0.15),
        )
    assert time.monotonic() - t0 < 0.5
    assert len(fake.assets) == 1  # the slow request was still handled: the asset exists
    assert signed(http, fake)["asset_id"] in fake.assets
    assert fake.wait_until(lambda: len(fake.calls_to("sign")) == 2, timeout=3)


def test_fault_queue_order_and_validation(fake: FakeMavi, http: requests.Session) -> None:
    fake.inject("sign", Fault("status", 500), times=2)
    fake.inject("sign", Fault("html", 503))
    fake.inject("metadata", Fault("status", 502))
    assert [sign(http, fake).status_code for _ in range(4)] == [500, 500, 503, 200]
    fake.clear_faults()
    assert metadata(http, fake, "re_1").status_code == 404
    with pytest.raises(ValueError):
        fake.inject("bogus", Fault("drop"))
    for kind in ("expired", "xml_error"):
        with pytest.raises(ValueError):
            fake.inject("sign", Fault(kind))
    with pytest.raises(ValueError):
        Fault("bogus")
    with pytest.raises(ValueError):
        fake.set_random_faults(1.5)


def test_random_faults(http: requests.Session) -> None:
    with FakeMavi(KEY, seed=7) as fake:
        fake.set_random_faults(1.0, ("sign",))
        seen: set[int] = set()
        for _ in range(25):
            try:
                seen.add(sign(http, fake).status_code)
            except requests.ConnectionError:
                seen.add(0)
        assert seen == {0, 400, 429, 500, 503}
        assert fake.assets == {}
        assert {c.status for c in fake.calls} == seen
        assert metadata(http, fake, "re_1").status_code == 404  # not in the endpoint list
        fake.set_random_faults(0.5)
        ok = 0
        for _ in range(30):
            with contextlib.suppress(requests.ConnectionError):
                ok += sign(http, fake).status_code == 200
        assert 5 < ok < 25
        fake.set_random_faults(0.0)
        assert all(sign(http, fake).status_code == 200 for _ in range(5))


# ------------------------------------------------------------------------ storage faults
STORAGE_FAULTS = [
    (Fault("status", 500), 500, "InternalError"),
    (Fault("status", 503, retry_after=3), 503, "ServiceUnavailable"),
    (Fault("html", 503), 503, "<html>"),
    (Fault("malformed"), 200, "{not json"),
    (Fault("rate_limit_429", 429, retry_after=1), 429, "SlowDown"),
    (Fault("rate_limit_400", 400), 400, "Request has exceeded the limit."),
    (Fault("expired"), 400, "<Code>ExpiredToken</Code>"),
    (Fault("xml_error"), 403, "<Code>SignatureDoesNotMatch</Code>"),
    (Fault("xml_error", 400), 400, "<Code>SignatureDoesNotMatch</Code>"),
]


@pytest.mark.parametrize(("fault", "status", "text"), STORAGE_FAULTS)
def test_storage_faults(
    fake: FakeMavi, http: requests.Session, fault: Fault, status: int, text: str
) -> None:
    data = os.urandom(150_000)
    d = signed(http, fake)
    fake.inject("storage", fault)
    resp = upload(http, d["signed_url"], data)
    assert resp.status_code == status and text in resp.text
    if fault.retry_after is not None:
        assert resp.headers["Retry-After"] == str(int(fault.retry_after))
    if "<Code>" in text or fault.kind == "status":
        assert resp.headers["Content-Type"].startswith("application/xml")
    assert fake.uploads == {} and fake.received_sha256s() == []
    assert status_of(http, fake, d["asset_id"]) == "WAITING"
    assert upload(http, d["signed_url"], data).status_code == 204  # same URL, fault consumed
    assert fake.received_sha256s() == [sha(data)]


@pytest.mark.parametrize("chunked", [False, True])
def test_storage_drop_mid_body(fake: FakeMavi, http: requests.Session, chunked: bool) -> None:
    data = os.urandom(3 << 20)
    d = signed(http, fake)
    fake.inject("storage", Fault("drop"))
    body = multipart(data)
    with pytest.raises(requests.ConnectionError):
        post_raw(http, d["signed_url"], iter([body[:70_000], body[70_000:]]) if chunked else body)
    assert fake.wait_until(lambda: len(fake.calls_to("storage")) == 1, timeout=3)
    assert fake.calls_to("storage")[0].status == 0 and fake.uploads == {}
    assert status_of(http, fake, d["asset_id"]) == "WAITING"
    assert upload(http, d["signed_url"], data).status_code == 204
    assert fake.received_sha256s() == [sha(data)]


def test_storage_slow_lands_but_times_out(fake: FakeMavi, http: requests.Session) -> None:
    d = signed(http, fake)
    fake.inject("storage", Fault("slow", delay=0.6))
    with pytest.raises(requests.ReadTimeout):
        upload(http, d["signed_url"], b"payload", timeout=0.15)
    assert fake.wait_until(lambda: d["asset_id"] in fake.uploads, timeout=2)
    assert status_of(http, fake, d["asset_id"]) == "SUCCESS"


def test_storage_rejects_bad_requests(fake: FakeMavi, http: requests.Session) -> None:
    d = signed(http, fake)
    other = signed(http, fake, "other.mp4")
    url, aid = d["signed_url"], d["asset_id"]
    sig = parse_qs(urlsplit(url).query)["X-Goog-Signature"][0]
    other_sig = parse_qs(urlsplit(other["signed_url"]).query)["X-Goog-Signature"][0]
    forged = [
        url.replace(sig, "0" * 64),
        url.replace(sig, other_sig),
        url.replace(aid, other["asset_id"]),
        url.replace("/clip.mp4?", "/clap.mp4?"),
        url.split("?")[0],
        url.replace(aid, "re_999999999999999999"),
    ]
    for bad in forged:
        resp = upload(http, bad, b"data")
        assert resp.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in resp.text
    assert http.put(url, data=b"data", timeout=5).status_code == 403
    resp = http.post(url, data=b"raw bytes", headers={"Content-Type": "video/mp4"}, timeout=5)
    assert resp.status_code == 400 and "InvalidArgument" in resp.text
    for body in (
        multipart(b"data", field="video"),  # no part named file
        multipart(b"data")[:-8],  # no closing delimiter
        b"--" + BOUNDARY.encode() + b"garbage\r\n\r\n",
    ):
        resp = post_raw(http, url, body)
        assert resp.status_code == 400 and "InvalidArgument" in resp.text, body
    assert fake.uploads == {}
    assert upload(http, url, b"data", timeout=5).status_code == 204
    assert upload(http, url, b"data", timeout=5, name="x.bin").status_code == 204  # part name free


def test_expired_urls(fake: FakeMavi, http: requests.Session) -> None:
    fake.set_url_ttl(0)
    d = signed(http, fake)
    assert d["expires_in"] == 0 and "X-Goog-Expires=0&" in d["signed_url"]
    resp = upload(http, d["signed_url"], b"late")
    assert resp.status_code == 400 and "<Code>ExpiredToken</Code>" in resp.text
    fake.set_url_ttl(3600)
    d2 = signed(http, fake)
    fake.expire_all_urls()
    assert upload(http, d2["signed_url"], b"late").status_code == 400
    d3 = signed(http, fake)
    assert upload(http, d3["signed_url"], b"fresh").status_code == 204
    assert list(fake.uploads) == [d3["asset_id"]]


def test_client_cut_short(fake: FakeMavi, http: requests.Session) -> None:
    d = signed(http, fake)
    parts = urlsplit(d["signed_url"])
    body = multipart(b"z" * 100_000)
    for framing in (f"Content-Length: {len(body)}", "Transfer-Encoding: chunked"):
        head = (
            f"POST {parts.path}?{parts.query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{framing}\r\n\r\n"
        )
        payload = body[:50_000] if "Length" in framing else b"%x\r\n" % 50_000 + body[:50_000]
        with socket.create_connection(("127.0.0.1", fake.port), timeout=5) as sock:
            sock.sendall(head.encode() + payload)
    assert fake.wait_until(lambda: len(fake.calls_to("storage")) == 2, timeout=3)
    assert [c.status for c in fake.calls_to("storage")] == [0, 0]
    assert fake.uploads == {} and status_of(http, fake, d["asset_id"]) == "WAITING"


# ---------------------------------------------------------------------- multipart parser
def test_parser_every_split_point() -> None:
    data = tricky_bytes(180) + b"\r\n--" + BOUNDARY[:-1].encode()
    body = multipart(data, extra=True)
    for cut in range(len(body) + 1):
        sink = MultipartFileSink(BOUNDARY, keep=True)
        sink.feed(body[:cut])
        sink.feed(body[cut:])
        sink.finish()
        assert (sink.body, sink.size, sink.sha256.hexdigest()) == (
            bytearray(data),
            len(data),
            sha(data),
        )
    sink = MultipartFileSink(BOUNDARY, keep=False)
    for i in range(len(body)):
        sink.feed(body[i : i + 1])
    sink.finish()
    assert (sink.body, sink.sha256.hexdigest(), sink.filename) == (None, sha(data), "clip.mp4")


def test_parser_rejects_malformed() -> None:
    for body in (multipart(b"x")[:-4], multipart(b"x", field="other"), b"", b"junk"):
        sink = MultipartFileSink(BOUNDARY, keep=False)
        sink.feed(body)
        with pytest.raises(BadBody):
            sink.finish()
    sink = MultipartFileSink(BOUNDARY, keep=False)
    with pytest.raises(BadBody):
        sink.feed(b"--" + BOUNDARY.encode() + b"junk\r\n")


def test_boundary_straddles_server_reads(fake: FakeMavi, http: requests.Session) -> None:
    """The closing delimiter lands at every offset around the 64 KiB socket-read edge."""
    head_len = len(multipart(b"").split(b"\r\n--" + BOUNDARY.encode() + b"--")[0])
    delim_len = len(BOUNDARY) + 4
    expected = []
    for shift in range(-3, delim_len + 4):
        size = fake.chunk_size - head_len - shift
        data = (
            tricky_bytes(size - delim_len) + b"\r\n--" + BOUNDARY[: shift % len(BOUNDARY)].encode()
        )
        data = data[:size].ljust(size, b"-")
        d = signed(http, fake)
        assert post_raw(http, d["signed_url"], multipart(data)).status_code == 204
        expected.append(sha(data))
    for size in (65_535, 65_536, 65_537, 131_072 - 150, 131_072 - 100):  # requests' own boundary
        data = tricky_bytes(size)
        assert upload(http, signed(http, fake)["signed_url"], data).status_code == 204
        expected.append(sha(data))
    assert fake.received_sha256s() == expected


@pytest.mark.parametrize("chunk", [1, 7, 13, 100])
def test_tiny_server_reads(fake: FakeMavi, http: requests.Session, chunk: int) -> None:
    fake.chunk_size = chunk
    data = tricky_bytes(3000)
    d = signed(http, fake)
    assert post_raw(http, d["signed_url"], multipart(data, extra=True)).status_code == 204
    assert fake.uploads[d["asset_id"]].sha256 == sha(data)


# ----------------------------------------------------------------------- metadata script
def test_metadata_script_progression(fake: FakeMavi, http: requests.Session) -> None:
    fake.set_metadata_script(["WAITING", "UPLOADING", "SUCCESS"])
    d = signed(http, fake)
    assert status_of(http, fake, d["asset_id"]) == "WAITING"  # before any upload
    assert upload(http, d["signed_url"], b"v1").status_code == 204
    assert fake.assets[d["asset_id"]].upload_status == "WAITING"
    got = [status_of(http, fake, d["asset_id"]) for _ in range(5)]
    assert got == ["WAITING", "UPLOADING", "SUCCESS", "SUCCESS", "SUCCESS"]
    assert fake.assets[d["asset_id"]].upload_status == "SUCCESS"
    d2 = signed(http, fake)  # the script stays in force for later assets
    assert upload(http, d2["signed_url"], b"v2").status_code == 204
    assert status_of(http, fake, d2["asset_id"]) == "WAITING"
    with pytest.raises(ValueError):
        fake.set_metadata_script(["DONE"])


def test_metadata_failed_then_new_sign(fake: FakeMavi, http: requests.Session) -> None:
    fake.set_metadata_script(["UPLOADING", "FAILED"], times=1)
    d = signed(http, fake)
    assert upload(http, d["signed_url"], b"video").status_code == 204
    assert [status_of(http, fake, d["asset_id"]) for _ in range(3)] == [
        "UPLOADING",
        "FAILED",
        "FAILED",
    ]
    d2 = signed(http, fake)
    assert upload(http, d2["signed_url"], b"video").status_code == 204
    assert status_of(http, fake, d2["asset_id"]) == "SUCCESS"
    assert status_of(http, fake, d["asset_id"]) == "FAILED"
    assert fake.received_sha256s() == [sha(b"video")] * 2
    assert [u.asset_id for u in fake.completed_by_filename()["clip.mp4"]] == [
        d["asset_id"],
        d2["asset_id"],
    ]
    fake.set_metadata_script(["FAILED"])  # without times: for every later asset
    for _ in range(2):
        d3 = signed(http, fake)
        upload(http, d3["signed_url"], b"v")
        assert status_of(http, fake, d3["asset_id"]) == "FAILED"


def test_reupload_to_same_url_keeps_last(fake: FakeMavi, http: requests.Session) -> None:
    d = signed(http, fake)
    for payload in (b"first", b"second"):
        assert upload(http, d["signed_url"], payload).status_code == 204
    assert fake.uploads[d["asset_id"]].body == b"second"
    assert fake.received_sha256s() == [sha(b"first"), sha(b"second")]
    assert fake.assets[d["asset_id"]].uploads_completed == 2


# ------------------------------------------------------------------------ rate / records
def test_max_calls_in_window(fake: FakeMavi, http: requests.Session) -> None:
    for t in (100.0, 100.5, 101.2, 101.3, 102.1, 103.2):
        fake.calls.append(CallRecord(t, "sign", "POST", "/x", 200, True))
    assert fake.max_calls_in_window("sign") == 3
    assert fake.max_calls_in_window("sign", 0.5) == 2
    assert fake.max_calls_in_window("sign", 0.01) == 1
    assert fake.max_calls_in_window("sign", 10) == 6
    assert fake.max_calls_in_window("metadata") == 0
    for _ in range(3):
        metadata(http, fake, "re_1")
    assert fake.max_calls_in_window("metadata", 5.0) == 3


def test_stop_is_prompt_with_open_connections(http: requests.Session) -> None:
    fake = FakeMavi(KEY).start()
    assert sign(http, fake).status_code == 200  # leaves a keep-alive connection open
    fake.inject("sign", Fault("slow", delay=30))
    errors: list[Exception] = []

    def slow_call() -> None:
        try:
            sign(http, fake)
        except requests.RequestException as exc:
            errors.append(exc)

    thread = threading.Thread(target=slow_call)
    thread.start()
    assert fake.wait_until(lambda: len(fake.assets) == 2, timeout=3)
    t0 = time.monotonic()
    fake.stop()
    assert time.monotonic() - t0 < 1.0
    thread.join(timeout=3)
    assert not thread.is_alive() and len(errors) == 1
    with requests.Session() as other, pytest.raises(requests.ConnectionError):
        sign(other, fake)
    fake.stop()  # idempotent


def test_cli_subprocess(tmp_path: Path, http: requests.Session) -> None:
    dump = tmp_path / "dump.json"
    script = Path(__file__).with_name("fakemavi.py")
    cmd = [sys.executable, str(script), "--port", "0", "--key", "K", "--dump", str(dump)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            info = json.loads(proc.stdout.readline())
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/serve/api/v2", info["api_base"])
            resp = http.post(
                f"{info['api_base']}/upload/signed-url",
                json={"original_filename": "a.mp4"},
                headers={"Authorization": "K"},
                timeout=TIMEOUT,
            )
            assert resp.status_code == 200
            url = resp.json()["data"]["signed_url"]
            assert upload(http, url, b"cli").status_code == 204
        finally:
            proc.terminate()
            assert proc.wait(timeout=5) == 0
    records = json.loads(dump.read_text())
    assert [c["endpoint"] for c in records["calls"]] == ["sign", "storage"]
    assert records["completed"][0]["sha256"] == sha(b"cli")
