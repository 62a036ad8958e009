"""Hand-offs in process: the hook runner, the webhook poster, their config, the runner pass."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import random
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Clock
from journal_paths import drive
from mavi_uploader.config.handoff import HandoffConfig
from mavi_uploader.config.settings import ConfigError, load_config
from mavi_uploader.config.timers import Timers
from mavi_uploader.core.handoffs import (
    OUTPUT_LIMIT,
    Attempt,
    HandoffKind,
    hook_env,
    shown_output,
)
from mavi_uploader.core.records import FileRecord, Observation, State
from mavi_uploader.journal import JournalStore, open_journal
from mavi_uploader.redaction import REDACTED, register_secret
from mavi_uploader.service.handoffs import HandoffRunner, kinds_owed
from mavi_uploader.upload.hook import Interrupted, run_hook
from mavi_uploader.upload.webhook import post_webhook, signature

KEY = "test-key-0123456789abcdef"


# ---- the hook -------------------------------------------------------------------------------


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_hook_exit_codes_and_output() -> None:
    ok = run_hook(
        py("import sys; print('hello', flush=True); print('err', file=sys.stderr)"), {}, 30
    )
    assert ok == Attempt(True, "exit 0", "hello\nerr")
    bad = run_hook(py("import sys; sys.exit(7)"), {}, 30)
    assert not bad.ok and bad.summary == "exit 7"
    missing = run_hook(["/nonexistent/hook"], {}, 30)
    assert not missing.ok and missing.summary.startswith("could not start /nonexistent/hook")


def test_hook_gets_exactly_the_environment_given() -> None:
    code = "import os, json; print(json.dumps(sorted(os.environ)))"
    shown = run_hook(py(code), {"A": "1", "PATH": os.defpath}, 30).output
    assert shown in {'["A", "PATH"]', '["A", "LC_CTYPE", "PATH"]'}  # Python may add LC_CTYPE


def test_a_hook_past_its_timeout_is_killed_with_everything_it_started(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys, time;"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid)); print('started', flush=True);"
        "time.sleep(60)"
    )
    started = time.monotonic()
    result = run_hook(py(code), {"PATH": os.defpath}, 1.0)
    assert time.monotonic() - started < 20
    assert not result.ok and result.summary == "timed out after 1s; killed"
    assert result.output == "started"
    grandchild = int(pidfile.read_text())

    def gone() -> bool:
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            return True
        # A zombie until init reaps it: dead all the same.
        status = Path(f"/proc/{grandchild}/stat").read_text().split()[2]
        return status == "Z"

    deadline = time.monotonic() + 10
    while not gone():
        assert time.monotonic() < deadline, "the hook's child outlived the timeout"
        time.sleep(0.05)


def test_a_stop_interrupts_a_running_hook() -> None:
    stop = threading.Event()
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    try:
        with pytest.raises(Interrupted):
            run_hook(py("import time; time.sleep(60)"), {}, 60, stop)
    finally:
        timer.cancel()


def test_long_output_keeps_its_start_and_end_within_the_limit() -> None:
    code = "import sys; sys.stdout.write('A' * 100000 + 'THE END')"
    shown = run_hook(py(code), {}, 30).output
    assert shown.startswith("AAAA") and shown.endswith("THE END")
    assert "bytes ...]" in shown and len(shown) < OUTPUT_LIMIT + 100


def test_shown_output_redacts_secrets_and_signed_urls() -> None:
    register_secret(KEY)
    text = f"key {KEY} url https://s.test/o?X-Goog-Signature=abc".encode()
    shown = shown_output(text, text, len(text))
    assert KEY not in shown and "abc" not in shown and REDACTED in shown


def test_hook_env_is_a_safe_base_and_the_files_variables() -> None:
    rec = record(state=State.DUPLICATE, asset_id="re_original", sha256="ab", size=5)
    daemon_env = {
        "PATH": "/bin", "HOME": "/h", "LC_ALL": "C", "MAVI_API_KEY": KEY,
        "MAVI_UPLOADER_JOURNAL_URL": "postgresql://u:pw@h/db", "AWS_SECRET_ACCESS_KEY": "x",
    }  # fmt: skip
    env = hook_env(rec, "file.duplicate", daemon_env)
    assert env == {
        "PATH": "/bin", "HOME": "/h", "LC_ALL": "C", "MAVI_FILE_ID": "7",
        "MAVI_FILE_PATH": "/w/a.mp4", "MAVI_FILE_SHA256": "ab", "MAVI_FILE_SIZE": "5",
        "MAVI_FILE_STATE": "duplicate", "MAVI_ASSET_ID": "re_original",
    }  # fmt: skip
    assert hook_env(rec, "file.done", {})["PATH"]  # a PATH even when the daemon has none


# ---- the webhook ----------------------------------------------------------------------------


class _Answers(BaseHTTPRequestHandler):
    status = 200

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(self.status)
        self.send_header("Location", "https://elsewhere.test/x?token=zzz")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    thread = threading.Thread(target=httpd.serve_forever)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(10)


def test_signature_is_the_hmac_of_the_exact_body() -> None:
    body = b'{"event": "file.done"}'
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert signature("s3cret", body) == f"sha256={expected}"


@pytest.mark.parametrize(
    ("status", "ok", "summary"),
    [
        (200, True, "HTTP 200"),
        (204, True, "HTTP 204"),
        (302, False, "HTTP 302 redirect to https://elsewhere.test/x (not followed)"),
        (500, False, "HTTP 500"),
    ],
)
def test_webhook_outcomes(server: ThreadingHTTPServer, status: int, ok: bool, summary: str) -> None:
    _Answers.status = status
    url = f"http://127.0.0.1:{server.server_address[1]}/h"
    got = post_webhook(url, b"{}", event="file.done", delivery=1, secret="", timeout=5)
    assert (got.ok, got.summary) == (ok, summary)


def test_webhook_to_nowhere_is_a_failure_without_the_token() -> None:
    got = post_webhook(
        "http://127.0.0.1:9/h?token=tok-zzz", b"{}", event="file.done", delivery=1,
        secret="", timeout=2,
    )  # fmt: skip
    assert not got.ok and "ConnectionError" in got.summary and "tok-zzz" not in got.summary


# ---- config ---------------------------------------------------------------------------------


def load(tmp_path: Path, text: str) -> Any:
    config = tmp_path / "config.toml"
    config.write_text(text + '\n[[watch]]\npath = "w"\n')
    return load_config(config_path=str(config), env={"MAVI_API_KEY": KEY, "PATH": "/usr/bin"})


def test_handoff_config_defaults_to_nothing_owed(tmp_path: Path) -> None:
    cfg = load(tmp_path, "")
    assert cfg.handoff == HandoffConfig() and kinds_owed(cfg.handoff) == ()


def test_on_done_is_resolved_to_an_executable(tmp_path: Path) -> None:
    cfg = load(tmp_path, 'on_done = ["env", "-0"]\non_done_timeout_seconds = 12')
    assert cfg.handoff.on_done == (os.path.realpath("/usr/bin/env"), "-0") or (
        cfg.handoff.on_done[0].endswith("/env") and cfg.handoff.on_done[1:] == ("-0",)
    )
    assert cfg.handoff.on_done_timeout_seconds == 12.0
    assert kinds_owed(cfg.handoff) == (HandoffKind.COMMAND,)


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ('on_done = ["no-such-hook-xyz"]', "'no-such-hook-xyz' was not found on PATH"),
        ('on_done = ["/nonexistent/hook"]', "/nonexistent/hook does not exist"),
        ("on_done = []", "on_done = [] is not valid"),
        ('on_done = "/bin/true"', "(no shell)"),
        ('on_done = ["/bin/true"]\non_done_timeout_seconds = 0', "on_done_timeout_seconds"),
        ('webhook_url = "ftp://h/x"', "webhook_url is not valid"),
        ('webhook_url = "http://hooks.example.com/x"', "only allowed to this machine"),
        ('webhook_url = "https://h/x"\nwebhook_secret_file = "missing"', "cannot be read"),
    ],
)
def test_bad_handoff_keys_name_the_key_and_the_fix(tmp_path: Path, line: str, says: str) -> None:
    with pytest.raises(ConfigError, match=r"config\.toml") as error:
        load(tmp_path, line)
    assert says in str(error.value)


def test_a_relative_hook_that_is_not_executable_says_chmod(tmp_path: Path) -> None:
    (tmp_path / "hook.sh").write_text("#!/bin/sh\n")
    with pytest.raises(ConfigError, match=r"chmod \+x"):
        load(tmp_path, 'on_done = ["./hook.sh"]')
    (tmp_path / "hook.sh").chmod(0o755)
    assert load(tmp_path, 'on_done = ["./hook.sh"]').handoff.on_done == (str(tmp_path / "hook.sh"),)


def test_webhook_http_only_to_loopback_and_the_secret_is_a_secret(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("\ufeffwh-secret-0123456789\n")
    secret.chmod(0o644)
    cfg = load(
        tmp_path,
        'webhook_url = "http://[::1]:8080/x?token=t0k"\nwebhook_secret_file = "secret"',
    )
    assert cfg.handoff.webhook_url == "http://[::1]:8080/x?token=t0k"
    assert cfg.handoff.webhook_secret == "wh-secret-0123456789"
    assert "wh-secret-0123456789" in cfg.secrets
    assert "wh-secret-0123456789" not in repr(cfg) and "t0k" not in repr(cfg)
    assert any("readable by group/others" in w and "chmod 600" in w for w in cfg.warnings)
    assert load(tmp_path, 'webhook_url = "http://localhost/x"').handoff.webhook_url


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=5000))
def test_any_secret_file_is_a_secret_or_a_config_error_never_echoed(
    tmp_path: Path, data: bytes
) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(data)
    secret.chmod(0o600)
    try:
        cfg = load(tmp_path, 'webhook_url = "https://h/x"\nwebhook_secret_file = "secret"')
    except ConfigError as exc:
        text = data.decode("utf-8", "replace").strip()
        assert len(text) < 6 or text not in str(exc)
        return
    assert cfg.handoff.webhook_secret and cfg.handoff.webhook_secret.isascii()
    assert cfg.handoff.webhook_secret.encode() in data


# ---- the runner's pass ----------------------------------------------------------------------


def record(**fields: Any) -> FileRecord:
    base = FileRecord(
        id=7, path="/w/a.mp4", watch_root="/w", state=State.DONE, size=5, mtime_ns=1,
        stable_since=None, sha256="ab", asset_id="re_1", signed_url=None, url_expires_at=None,
        duplicate_of=None, attempts=0, next_attempt_at=None, confirm_polls=0, last_error=None,
        lease_owner=None, lease_expires_at=None, bytes_sent=5, created_at=1.0, updated_at=1.0,
    )  # fmt: skip
    return dataclasses.replace(base, **fields)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def journal(tmp_path: Path, clock: Clock) -> Iterator[JournalStore]:
    store = open_journal(tmp_path / "state", clock=clock)
    yield store
    store.close()


def finished_owing(journal: JournalStore, kinds: list[HandoffKind]) -> int:
    (rec,) = journal.sight([Observation("/w/a.mp4", "/w", 5, 1)])
    drive(journal, rec.id, State.CONFIRMING)
    done = journal.transition(rec.id, State.DONE, "ok", handoffs=kinds)
    assert done is not None
    return done.id


class FakeHook:
    def __init__(self, *answers: Attempt) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[list[str], dict[str, str], float]] = []

    def __call__(
        self, argv: list[str], env: Mapping[str, str], timeout: float, stop: threading.Event
    ) -> Attempt:
        self.calls.append((argv, dict(env), timeout))
        return self.answers.pop(0)


def runner(
    journal: JournalStore, config: HandoffConfig, hook: FakeHook, kind: HandoffKind
) -> HandoffRunner:
    return HandoffRunner(
        journal, kind, lambda: config, threading.Event(), timers=Timers(handoff_first=10.0),
        rng=random.Random(1), daemon_env={"PATH": "/bin", "MAVI_API_KEY": KEY}, run=hook,
    )  # fmt: skip


def test_runner_pass_retries_with_backoff_then_delivers(
    journal: JournalStore, clock: Clock
) -> None:
    file_id = finished_owing(journal, [HandoffKind.COMMAND])
    hook = FakeHook(Attempt(False, "exit 1", "boom"), Attempt(True, "exit 0"))
    cfg = HandoffConfig(on_done=("/bin/hook", "--x"), on_done_timeout_seconds=9.0)
    run = runner(journal, cfg, hook, HandoffKind.COMMAND)
    assert run.run_once() == 1
    (owed,) = journal.handoffs()
    assert owed.attempts == 1 and owed.last_error == "exit 1; output: boom"
    assert owed.next_attempt_at is not None and 5.0 <= owed.next_attempt_at - clock.now <= 10.0
    assert run.run_once() == 0  # not due yet
    clock.now += 10
    assert run.run_once() == 1 and journal.handoffs() == []
    argv, env, timeout = hook.calls[0]
    assert argv == ["/bin/hook", "--x"] and timeout == 9.0 and "MAVI_API_KEY" not in env
    reasons = [e.reason for e in journal.history(file_id)][-2:]
    assert reasons[0].startswith("hand-off on_done failed (attempt 1: exit 1); output: boom")
    assert reasons[1] == "hand-off on_done delivered (exit 0)"


def test_a_handoff_whose_key_was_removed_is_dropped_with_an_event(
    journal: JournalStore,
) -> None:
    file_id = finished_owing(journal, [HandoffKind.WEBHOOK])
    hook = FakeHook()
    assert runner(journal, HandoffConfig(), hook, HandoffKind.WEBHOOK).run_once() == 1
    assert journal.handoffs() == [] and hook.calls == []
    assert "webhook_url is no longer set" in journal.history(file_id)[-1].reason
