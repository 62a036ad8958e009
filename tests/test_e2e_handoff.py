"""End to end: hand-offs (on_done, webhook) from `mavi-uploader run` as a subprocess.

The hook is a real Python script run with sys.executable; the webhook receiver a real
http.server on 127.0.0.1. Every wait is a poll with a deadline.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import API_KEY, DaemonProcess, wait_for, write_video
from fakemavi import FakeMavi
from mavi_uploader.core.handoffs import SAFE_ENV

DaemonFactory = Callable[..., DaemonProcess]
SECRET = "whsec-0123456789-abcdef"
FAST = {"handoff_first": 0.2, "handoff_poll": 0.1}
FILE_VARS = {
    "MAVI_FILE_ID", "MAVI_FILE_PATH", "MAVI_FILE_SHA256", "MAVI_FILE_SIZE", "MAVI_FILE_STATE",
    "MAVI_ASSET_ID",
}  # fmt: skip

# Dumps its argv and environment to DIR/<n>.json; with a FAIL marker path as argv[2], fails
# (exit 3, with output) the first time only: the marker says it already failed once.
HOOK = """
import json, os, sys, uuid
out = sys.argv[1]
record = {"argv": sys.argv, "env": dict(os.environ)}
fail_marker = sys.argv[2] if len(sys.argv) > 2 else None
ok = not fail_marker or os.path.exists(fail_marker)
record["ok"] = ok
with open(os.path.join(out, uuid.uuid4().hex + ".json"), "w") as f:
    json.dump(record, f)
if not ok:
    open(fail_marker, "w").close()
    print("indexer unreachable: connection refused", file=sys.stderr)
    sys.exit(3)
print("indexed", os.environ["MAVI_ASSET_ID"])
"""


def hook_command(tmp_path: Path, *, fail_once: bool = False) -> tuple[list[str], Path]:
    script = tmp_path / "hook.py"
    script.write_text(HOOK)
    runs = tmp_path / "hook-runs"
    runs.mkdir()
    argv = [sys.executable, str(script), str(runs)]
    if fail_once:
        argv.append(str(tmp_path / "failed-once"))
    return argv, runs


def hook_runs(runs: Path) -> list[dict[str, Any]]:
    found = []
    for path in runs.glob("*.json"):
        try:
            found.append(json.loads(path.read_text()))
        except ValueError:
            continue  # being written right now
    return found


def owed(daemon: DaemonProcess) -> int:
    return int(daemon.status()["handoffs"]["owed"])


def finished(daemon: DaemonProcess, count: int) -> bool:
    counts = daemon.status()["counts"]
    return int(counts["done"]) + int(counts["duplicate"]) >= count


class Receiver:
    """A webhook receiver: answers each POST with the next status of `answers` (then 200)."""

    def __init__(self, answers: list[int]) -> None:
        self.answers = answers
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.requests.append((self.path, dict(self.headers), body))
                    status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", f"{receiver.url_base}/elsewhere?token=s3cr3t")
                self.send_header("Content-Length", "7")
                self.end_headers()
                self.wfile.write(b"answer!")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url_base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def posts(self) -> list[tuple[str, dict[str, str], bytes]]:
        with self.lock:
            return list(self.requests)


@pytest.fixture
def receiver_factory() -> Iterator[Callable[[list[int]], Receiver]]:
    made: list[Receiver] = []

    def make(answers: list[int]) -> Receiver:
        receiver = Receiver(answers)
        receiver.thread.start()
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.server.shutdown()
        receiver.server.server_close()
        receiver.thread.join(timeout=10)


def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "webhook-secret"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    return path


def assert_no_secret(text: str) -> None:
    assert API_KEY not in text
    assert SECRET not in text


def test_hook_runs_once_per_finished_file_with_its_environment_and_no_secret(
    tmp_path: Path, fake: FakeMavi, daemon_factory: DaemonFactory
) -> None:
    argv, runs = hook_command(tmp_path)
    daemon = daemon_factory(on_done=argv, timers=FAST)
    daemon.env["MAVI_SOMETHING_SECRET"] = "not-for-hooks-42"  # other MAVI_* stay out too
    videos = [write_video(daemon.watch / f"v{i}.mp4", 50_000 + i) for i in range(3)]
    daemon.start()
    daemon.wait_ready()
    wait_for(lambda: finished(daemon, 3), 60, what="three files done")
    wait_for(lambda: owed(daemon) == 0 and len(hook_runs(runs)) >= 3, 60, what="hooks run")
    by_path = {f["path"]: f for f in daemon.cli_files()}
    dumps = hook_runs(runs)
    assert sorted(d["env"]["MAVI_FILE_PATH"] for d in dumps) == sorted(map(str, videos))
    for dump in dumps:
        env = dump["env"]
        row = by_path[env["MAVI_FILE_PATH"]]
        assert env["MAVI_FILE_ID"] == str(row["id"])
        assert env["MAVI_FILE_SHA256"] == row["sha256"]
        assert env["MAVI_FILE_SIZE"] == str(row["size"])
        assert env["MAVI_FILE_STATE"] == "done"
        assert env["MAVI_ASSET_ID"] == row["asset_id"] and row["asset_id"] in fake.uploads
        assert set(env) - FILE_VARS <= {*SAFE_ENV, *(k for k in env if k.startswith("LC_"))}
        assert "MAVI_API_KEY" not in env and "MAVI_SOMETHING_SECRET" not in env
        assert_no_secret(json.dumps(env))
        assert row["handoffs_owed"] == []
    history = daemon.cli("history", str(videos[0])).stdout
    assert "hand-off on_done delivered (exit 0); output: indexed" in history
    status = daemon.cli_status()
    assert status["handoffs"] == {"owed": 0, "failing": 0, "recent": []}
    assert_no_secret(json.dumps(status) + history + daemon.log_text())


def test_a_failing_hook_then_kill_9_then_restart_delivers_once(
    tmp_path: Path, fake: FakeMavi, daemon_factory: DaemonFactory
) -> None:
    argv, runs = hook_command(tmp_path, fail_once=True)
    # A long first backoff: the kill comes while the failed hand-off waits for its retry.
    daemon = daemon_factory(on_done=argv, timers={"handoff_first": 4.0, "handoff_poll": 0.1})
    video = write_video(daemon.watch / "a.mp4", 80_000)
    daemon.start()
    daemon.wait_ready()

    def failing() -> dict[str, Any] | None:
        recent = daemon.status()["handoffs"]["recent"]
        return recent[0] if recent and recent[0]["attempts"] == 1 else None

    seen = wait_for(failing, 60, what="the hook's first, failed attempt")
    assert seen["kind"] == "command" and seen["path"] == str(video)
    assert "exit 3" in seen["last_error"] and "indexer unreachable" in seen["last_error"]
    text = daemon.cli("status").stdout
    assert "hand-offs owed: 1 (1 failing)" in text and "indexer unreachable" in text
    listed = daemon.cli_files()[0]
    assert [h["kind"] for h in listed["handoffs_owed"]] == ["command"]
    assert "hand-off owed: command, 1 failed" in daemon.cli("list").stdout
    assert daemon.kill(signal.SIGKILL) == -signal.SIGKILL

    daemon.start()
    wait_for(lambda: owed(daemon) == 0, 60, what="the hand-off delivered after the restart")
    dumps = hook_runs(runs)
    assert [d["ok"] for d in sorted(dumps, key=lambda d: d["ok"])] == [False, True]
    history = daemon.cli("history", str(video)).stdout
    assert history.count("hand-off on_done delivered") == 1
    assert "hand-off on_done failed (attempt 1: exit 3); output: indexer unreachable" in history
    assert len(fake.received_sha256s()) == 1  # the file itself was sent once


def test_webhook_retried_after_500s_then_delivered_signed_with_the_list_object(
    tmp_path: Path, daemon_factory: DaemonFactory, receiver_factory: Callable[..., Receiver]
) -> None:
    receiver = receiver_factory([500, 500])
    daemon = daemon_factory(
        webhook_url=f"{receiver.url_base}/hook?token=tok-123456",
        webhook_secret_file=str(secret_file(tmp_path)),
        timers=FAST,
    )
    video = write_video(daemon.watch / "a.mp4", 60_000)
    daemon.start()
    daemon.wait_ready()
    wait_for(lambda: finished(daemon, 1) and owed(daemon) == 0, 60, what="webhook delivered")
    posts = receiver.posts()
    assert len(posts) == 3
    # One delivery, tried three times: the receiver can tell (its body is the file as it is
    # at each try: its hand-offs owed show the failed attempts).
    assert len({h["X-Mavi-Uploader-Delivery"] for _, h, _ in posts}) == 1
    path, headers, body = posts[-1]
    assert path == "/hook?token=tok-123456"
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Mavi-Uploader-Signature"], expected)
    assert headers["Content-Type"] == "application/json"
    doc = json.loads(body)
    assert doc["event"] == "file.done"
    (listed,) = daemon.cli_files()
    sent = {k: v for k, v in doc["file"].items() if k not in ("handoffs_owed", "updated_at")}
    assert sent == {k: v for k, v in listed.items() if k not in ("handoffs_owed", "updated_at")}
    assert sent["path"] == str(video) and sent["state"] == "done" and sent["asset_id"]
    history = daemon.cli("history", str(video)).stdout
    assert history.count("hand-off webhook failed") == 2 and "HTTP 500" in history
    assert "hand-off webhook delivered (HTTP 200)" in history
    everything = history + json.dumps(daemon.cli_status()) + daemon.log_text()
    assert_no_secret(everything + body.decode())
    assert "tok-123456" not in everything  # the URL's query is a credential too


def test_a_redirect_is_a_failure_to_retry_never_followed(
    tmp_path: Path, daemon_factory: DaemonFactory, receiver_factory: Callable[..., Receiver]
) -> None:
    receiver = receiver_factory([302])
    daemon = daemon_factory(webhook_url=f"{receiver.url_base}/hook", timers=FAST)
    video = write_video(daemon.watch / "a.mp4", 60_000)
    daemon.start()
    daemon.wait_ready()
    wait_for(lambda: finished(daemon, 1) and owed(daemon) == 0, 60, what="webhook delivered")
    assert [p for p, _, _ in receiver.posts()] == ["/hook", "/hook"]  # never /elsewhere
    assert "X-Mavi-Uploader-Signature" not in receiver.posts()[0][1]  # no secret: unsigned
    history = daemon.cli("history", str(video)).stdout
    assert "HTTP 302 redirect to http://127.0.0.1" in history and "(not followed)" in history
    assert "s3cr3t" not in history


def test_a_duplicate_is_handed_off_as_file_duplicate_with_the_originals_asset(
    tmp_path: Path,
    fake: FakeMavi,
    daemon_factory: DaemonFactory,
    receiver_factory: Callable[..., Receiver],
) -> None:
    argv, runs = hook_command(tmp_path)
    receiver = receiver_factory([])
    daemon = daemon_factory(on_done=argv, webhook_url=f"{receiver.url_base}/", timers=FAST)
    original = write_video(daemon.watch / "a.mp4", 70_000)
    daemon.start()
    daemon.wait_ready()
    wait_for(lambda: finished(daemon, 1), 60, what="the original done")
    copy = daemon.watch / "copy of a.mp4"
    shutil.copyfile(original, copy)
    wait_for(lambda: finished(daemon, 2) and owed(daemon) == 0, 60, what="both handed off")
    by_path = {f["path"]: f for f in daemon.cli_files()}
    assert by_path[str(copy)]["state"] == "duplicate"
    asset = by_path[str(original)]["asset_id"]
    assert by_path[str(copy)]["asset_id"] == asset
    envs = {d["env"]["MAVI_FILE_PATH"]: d["env"] for d in hook_runs(runs)}
    assert envs[str(copy)]["MAVI_FILE_STATE"] == "duplicate"
    assert envs[str(copy)]["MAVI_ASSET_ID"] == asset
    assert envs[str(original)]["MAVI_FILE_STATE"] == "done"
    events = {json.loads(b)["file"]["path"]: json.loads(b) for _, _, b in receiver.posts()}
    assert events[str(copy)]["event"] == "file.duplicate"
    assert events[str(copy)]["file"]["asset_id"] == asset
    assert events[str(original)]["event"] == "file.done"
    assert len(receiver.posts()) == 2 and len(hook_runs(runs)) == 2
    assert len(fake.received_sha256s()) == 1
