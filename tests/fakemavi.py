"""A fake Memories.ai MAVI v2 API plus its signed-URL storage bucket, on 127.0.0.1.

In tests::

    with FakeMavi("key") as fake:
        client(api_base=fake.api_base, api_key="key") ...
        assert fake.received_sha256s() == [...]

As a separate process: ``python tests/fakemavi.py --port 0 --key K`` prints one JSON line
``{"api_base": ..., "port": ...}`` on stdout and serves until SIGTERM/SIGINT.

Faults replace the normal handling of a request (no asset is signed, no upload is recorded),
except ``slow`` which handles the request normally and only delays the answer, and ``hold``
which handles it normally and keeps the answer until the test calls ``release_held()``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from fakemavi_wire import (
    DEFAULT_TTL,
    AssetRecord,
    BadBody,
    BodyIncomplete,
    CallRecord,
    Fault,
    TrackingServer,
    UploadRecord,
    WireHandler,
    multipart_boundary,
    phrase,
)

__all__ = ["AssetRecord", "CallRecord", "FakeMavi", "Fault", "UploadRecord", "main"]

API_PREFIX = "/serve/api/v2"
ENDPOINTS = ("sign", "storage", "metadata", "other")
STORAGE_ONLY = frozenset({"expired", "xml_error"})
STATUSES = ("WAITING", "UPLOADING", "SUCCESS", "FAILED")
_METADATA_RE = re.compile(re.escape(API_PREFIX) + r"/([^/]+)/metadata")


_TRANSIENT = (
    Fault("status", 500), Fault("html", 503), Fault("drop"),
    Fault("rate_limit_429", 429, retry_after=1), Fault("rate_limit_400", 400),
)  # fmt: skip


class FakeMavi:
    chunk_size: int = 64 * 1024  # socket read size for request bodies (tests may shrink it)

    def __init__(
        self,
        api_key: str = "test-key",
        *,
        code_style: str = "int",
        store_bodies: bool = True,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        storage_origin: str | None = None,
    ) -> None:
        if code_style not in ("int", "0000"):
            raise ValueError("code_style must be 'int' or '0000'")
        self.api_key = api_key
        self.code_style = code_style
        self.store_bodies = store_bodies
        self.host, self.port = host, port
        # Where signed URLs point; None: this server (a dead origin plays unreachable storage).
        self.storage_origin = storage_origin
        self.api_base = ""
        self.api_status_override: int | None = None
        # MAVI's per-account limit per endpoint (requests/second), enforced when set.
        self.enforce_limit_per_second: float | None = None
        self.last_accepted: dict[str, float] = {}
        self.refused_over_limit = 0
        self.uploads: dict[str, UploadRecord] = {}
        self.assets: dict[str, AssetRecord] = {}
        self.calls: list[CallRecord] = []
        self.completed: list[UploadRecord] = []  # every completed upload, in order
        self.lock = threading.RLock()
        self._rng = random.Random(seed)  # reproducible, not for security
        self._next_id = 660_000_000_000_000_000 + self._rng.randrange(10**15)
        self._scripted: dict[str, list[Fault]] = {e: [] for e in ENDPOINTS}
        self._random_rate = 0.0
        self._random_endpoints: tuple[str, ...] = ()
        self._script = ["SUCCESS"]
        self.processing_seconds = 0.0  # UPLOADING for this long after each complete upload
        self._script_times: int | None = None
        self._ttl = DEFAULT_TTL
        self._stopping = threading.Event()
        self._released = threading.Event()  # lets "hold" answers go (set for good)
        self.holding = 0  # answers held back right now
        self._server: TrackingServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> FakeMavi:
        server = TrackingServer(
            (self.host, self.port), lambda req, addr, srv: _Handler(req, addr, srv, self)
        )
        self.port = server.server_address[1]
        self.api_base = f"http://{self.host}:{self.port}{API_PREFIX}"
        self._server = server
        self._stopping.clear()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        self._stopping.set()  # wake "slow" handlers: their answers go to closed sockets
        self._released.set()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeMavi:
        return self.start() if self._server is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------- records
    def received_sha256s(self) -> list[str]:
        with self.lock:
            return [u.sha256 for u in self.completed]

    def completed_by_filename(self) -> dict[str, list[UploadRecord]]:
        out: dict[str, list[UploadRecord]] = {}
        with self.lock:
            for upload in self.completed:
                out.setdefault(upload.filename, []).append(upload)
        return out

    def calls_to(self, endpoint: str) -> list[CallRecord]:
        with self.lock:
            return [c for c in self.calls if c.endpoint == endpoint]

    def max_calls_in_window(self, endpoint: str, window: float = 1.0) -> int:
        """Most requests to ``endpoint`` received within any half-open window [t, t+window)."""
        times = sorted(c.time for c in self.calls_to(endpoint))
        best = start = 0
        for end, t in enumerate(times):
            while t - times[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    def wait_until(
        self, predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01
    ) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
        return True

    # ------------------------------------------------------------------- control
    def inject(self, endpoint: str, fault: Fault, times: int = 1) -> None:
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}")
        if fault.kind in STORAGE_ONLY and endpoint != "storage":
            raise ValueError(f"fault {fault.kind!r} is for the storage endpoint only")
        with self.lock:
            self._scripted[endpoint].extend([fault] * times)

    def clear_faults(self) -> None:
        with self.lock:
            for queue in self._scripted.values():
                queue.clear()
            self._random_rate = 0.0

    def set_random_faults(
        self, rate: float, endpoints: tuple[str, ...] = ("sign", "storage", "metadata")
    ) -> None:
        if not 0.0 <= rate <= 1.0 or any(e not in ENDPOINTS for e in endpoints):
            raise ValueError("rate must be in [0, 1] and endpoints known")
        with self.lock:
            self._random_rate, self._random_endpoints = rate, tuple(endpoints)

    def set_metadata_script(self, statuses: list[str], *, times: int | None = None) -> None:
        """Statuses answered by successive metadata GETs after each future completed upload.

        ``times``: apply to that many completed uploads only, then revert to ["SUCCESS"].
        """
        if not statuses or not set(statuses) <= set(STATUSES):
            raise ValueError(f"statuses must be a non-empty list from {STATUSES}")
        with self.lock:
            self._script, self._script_times = list(statuses), times

    def set_url_ttl(self, seconds: int) -> None:
        with self.lock:
            self._ttl = seconds

    def expire_all_urls(self) -> None:
        with self.lock:
            for asset in self.assets.values():
                asset.expires_at = float("-inf")

    def release_held(self) -> None:
        """Let every answer a "hold" fault keeps (and any later one) go."""
        self._released.set()

    def set_api_key(self, key: str) -> None:
        with self.lock:
            self.api_key = key

    # ------------------------------------------------------------------ internal
    def _take_fault(self, endpoint: str) -> Fault | None:
        with self.lock:
            if self._scripted[endpoint]:
                return self._scripted[endpoint].pop(0)
            if endpoint in self._random_endpoints and self._rng.random() < self._random_rate:
                return self._rng.choice(_TRANSIENT)
        return None

    def _record_call(self, call: CallRecord) -> None:
        with self.lock:
            self.calls.append(call)

    def _sign(self, filename: str) -> dict[str, Any]:
        with self.lock:
            self._next_id += self._rng.randrange(1, 10_000)
            asset_id = f"re_{self._next_id:018d}"
            signature = f"{self._rng.getrandbits(256):064x}"
            now, ttl = time.monotonic(), self._ttl
            self.assets[asset_id] = AssetRecord(
                asset_id, filename, now, signature=signature, expires_in=ttl,
                expires_at=now + ttl, create_ms=_ms(), modify_ms=_ms(),
            )  # fmt: skip
        origin = self.storage_origin or f"http://{self.host}:{self.port}"
        url = (
            f"{origin}/bucket/{asset_id}/{quote(filename, safe='')}"
            "?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=fake%2Fcred"
            f"&X-Goog-Expires={ttl}&X-Goog-Signature={signature}"
        )
        return {"asset_id": asset_id, "signed_url": url, "expires_in": ttl}

    def _complete_upload(self, record: UploadRecord) -> None:
        with self.lock:
            asset = self.assets[record.asset_id]
            asset.size, asset.modify_ms = record.size, _ms()
            asset.uploads_completed += 1
            asset.script, asset.script_pos = list(self._script), 0
            asset.upload_status = asset.script[0]
            if self._script_times is not None:
                self._script_times -= 1
                if self._script_times <= 0:
                    self._script, self._script_times = ["SUCCESS"], None
            self.uploads[record.asset_id] = record
            self.completed.append(record)

    def _metadata(self, asset_id: str) -> dict[str, Any] | None:
        with self.lock:
            asset = self.assets.get(asset_id)
            if asset is None:
                return None
            asset.metadata_gets += 1
            status = asset.upload_status
            landed = self.uploads.get(asset_id)
            processing = landed is not None and (
                time.monotonic() < landed.completed_at + self.processing_seconds
            )
            if processing:
                status = "UPLOADING"  # MAVI still processing the bytes: the script waits
            elif asset.script:
                asset.script_pos = min(asset.script_pos + 1, len(asset.script) - 1)
                asset.upload_status = asset.script[asset.script_pos]
            suffix = asset.filename.rpartition(".")[2].lower() if "." in asset.filename else ""
            resource = {
                "extension": suffix or "mp4", "asset_id": asset_id,
                "original_filename": asset.filename, "file_size": str(asset.size),
                "upload_status": status, "create_time": str(asset.create_ms),
                "modify_time": str(asset.modify_ms),
            }  # fmt: skip
        return {"total": 1, "resource": [resource]}


def _ms() -> int:
    return int(time.time() * 1000)


def _classify(method: str, path: str) -> str:
    if path.startswith("/bucket/"):
        return "storage"
    if method == "POST" and path == API_PREFIX + "/upload/signed-url":
        return "sign"
    return "metadata" if method == "GET" and _METADATA_RE.fullmatch(path) else "other"


class _Handler(WireHandler):
    _t0, _delay, _recorded, _endpoint, _path, _had_auth = 0.0, 0.0, False, "other", "", False
    _hold = False

    def __init__(self, request: Any, client_address: Any, server: Any, fake: FakeMavi) -> None:
        self.fake = fake
        super().__init__(request, client_address, server)

    def do_GET(self) -> None:
        self._t0, self._delay, self._recorded, self._hold = time.monotonic(), 0.0, False, False
        self.chunk_size = self.fake.chunk_size
        split = urlsplit(self.path)
        self._path, self._had_auth = split.path, "Authorization" in self.headers
        self._endpoint = _classify(self.command, split.path)
        storage = self._endpoint == "storage"
        try:
            fault = self.fake._take_fault(self._endpoint)
            if fault is not None and fault.kind in ("slow", "hold"):
                self._delay, self._hold, fault = fault.delay, fault.kind == "hold", None
            body = b"" if storage else self.read_body()
            if fault is not None and fault.kind == "drop" and storage:  # hang up mid-body
                half = None if self.is_chunked() else self.content_length() // 2
                for _ in self.body_pieces(limit=half):
                    if half is None:
                        break
                self.hang_up()
            elif fault is not None:
                if storage:
                    self.drain()
                self.send_fault(fault.kind, fault.status, fault.retry_after, storage)
            elif storage:
                self._storage(split.path, split.query)
            elif self._endpoint == "other":
                self.send_json_error(404, "Not Found")
            elif self._api_gate() and not self._over_account_limit():
                if self._endpoint == "sign":
                    self._sign(body)
                else:
                    self._metadata(split.path)
        except BodyIncomplete:
            self.hang_up()
        except BadBody as exc:
            self.close_connection = True
            if storage:
                self.send_xml(400, "InvalidArgument", str(exc))
            else:
                self.send_json_error(400, str(exc))
        except OSError:  # the client went away
            self.hang_up()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def on_respond(self, status: int) -> None:
        if status and self._delay > 0:
            self.fake._stopping.wait(self._delay)
        if status and self._hold:
            with self.fake.lock:
                self.fake.holding += 1
            self.fake._released.wait()
            with self.fake.lock:
                self.fake.holding -= 1
        if not self._recorded:
            self._recorded = True
            call = CallRecord(
                self._t0, self._endpoint, self.command, self._path, status, self._had_auth
            )
            self.fake._record_call(call)

    def _api_gate(self) -> bool:
        key_ok = self.headers.get("Authorization") == self.fake.api_key
        override = self.fake.api_status_override
        if not key_ok:
            self.send_json_error(401, "Unauthorized")
        elif override is not None:
            self.send_json_error(
                override, "Payment Required" if override == 402 else phrase(override)
            )
        return key_ok and override is None

    def _over_account_limit(self) -> bool:
        """MAVI's account limit, when the test sets one: a request to an endpoint sooner than
        1/limit after the last one it accepted is refused as MAVI does (400, its message)."""
        if not self.fake.enforce_limit_per_second:
            return False
        with self.fake.lock:
            last = self.fake.last_accepted.get(self._endpoint)
            if last is not None and self._t0 - last < 1.0 / self.fake.enforce_limit_per_second:
                self.fake.refused_over_limit += 1
                refused = True
            else:
                self.fake.last_accepted[self._endpoint] = self._t0
                refused = False
        if refused:
            self.send_json_error(400, "Request has exceeded the limit.")
        return refused

    def _ok(self, data: object) -> None:
        code: int | str = 200 if self.fake.code_style == "int" else "0000"
        payload = {"code": code, "msg": "success", "data": data, "success": True, "failed": False}
        self.send_json(200, payload)

    def _sign(self, body: bytes) -> None:
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        filename = payload.get("original_filename") if isinstance(payload, dict) else None
        if not isinstance(filename, str) or not filename.strip():
            self.send_json_error(400, "original_filename is required")
        else:
            self._ok(self.fake._sign(filename))

    def _metadata(self, path: str) -> None:
        match = _METADATA_RE.fullmatch(path)
        data = self.fake._metadata(unquote(match.group(1))) if match else None
        if data is None:
            self.send_json_error(404, "asset not found")
        else:
            self._ok(data)

    def _storage(self, path: str, query: str) -> None:
        parts = path.split("/", 3)
        asset_id, name = (parts[2], unquote(parts[3])) if len(parts) == 4 else ("", "")
        signature = parse_qs(query).get("X-Goog-Signature", [""])[0]
        with self.fake.lock:
            asset = self.fake.assets.get(asset_id)
            want = None if asset is None else ("POST", asset.filename, asset.signature)
            valid = want == (self.command, name, signature)
            expired = asset is not None and time.monotonic() >= asset.expires_at
        boundary = multipart_boundary(self.headers.get("Content-Type", ""))
        if not valid or expired or boundary is None:
            self.drain()
            if valid and not expired:
                self.send_xml(400, "InvalidArgument", "multipart/form-data body expected")
            else:
                self.send_fault("expired" if valid else "xml_error", 403, None, storage=True)
            return
        sink = self.read_multipart(boundary, keep=self.fake.store_bodies)
        body = None if sink.body is None else bytes(sink.body)
        record = UploadRecord(
            asset_id, name, sink.size, sink.sha256.hexdigest(), body, sink.content_type,
            time.monotonic(), self.is_chunked(), sink.filename,
        )  # fmt: skip
        self.fake._complete_upload(record)
        self.respond(204, b"", None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fake MAVI v2 API + storage bucket")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key", default="test-key")
    parser.add_argument("--code-style", choices=("int", "0000"), default="int")
    parser.add_argument("--no-store-bodies", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--url-ttl", type=int, default=DEFAULT_TTL)
    parser.add_argument("--metadata-script", default="SUCCESS", help="e.g. WAITING,SUCCESS")
    parser.add_argument("--random-fault-rate", type=float, default=0.0)
    parser.add_argument("--dump", help="write the records as JSON to this file on exit")
    parser.add_argument(
        "--enforce-limit-per-second", type=float, default=None,
        help="refuse, as MAVI does, requests to an endpoint above this account limit",
    )  # fmt: skip
    args = parser.parse_args(argv)
    fake = FakeMavi(
        args.key, code_style=args.code_style, store_bodies=not args.no_store_bodies,
        seed=args.seed, host=args.host, port=args.port,
    )  # fmt: skip
    fake.set_url_ttl(args.url_ttl)
    fake.set_metadata_script(args.metadata_script.split(","))
    fake.set_random_faults(args.random_fault_rate)
    fake.enforce_limit_per_second = args.enforce_limit_per_second
    done = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    fake.start()
    sys.stdout.write(json.dumps({"api_base": fake.api_base, "port": fake.port}) + "\n")
    sys.stdout.flush()
    while not done.wait(0.2):
        pass
    fake.stop()
    if args.dump:
        with open(args.dump, "w", encoding="utf-8") as fh:
            json.dump(_dump(fake), fh, indent=1)
    return 0


def _dump(fake: FakeMavi) -> dict[str, Any]:
    def strip(upload: UploadRecord) -> dict[str, Any]:
        return {k: v for k, v in asdict(upload).items() if k != "body"}

    with fake.lock:
        return {
            "completed": [strip(u) for u in fake.completed],
            "assets": [asdict(a) for a in fake.assets.values()],
            "calls": [asdict(c) for c in fake.calls],
            "refused_over_limit": fake.refused_over_limit,
        }


if __name__ == "__main__":
    sys.exit(main())
