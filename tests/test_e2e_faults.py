"""End to end, "nothing lost, nothing corrupt": the daemon against a misbehaving MAVI.

Every scenario runs `mavi-uploader` as a subprocess against its own fake server. The daemon
backs off between retries (1 s, 2 s, 4 s... by default; here from 0.05 s, the hidden [timers]
retry_first and confirm_first), and they all start together in the background (see
`Background` in conftest.py); each test checks one when it is done.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import (
    API_KEY,
    Background,
    DaemonProcess,
    ScenarioRun,
    exit_code_within,
    logged_done,
    new_daemon,
    sha256_of,
    start_fake,
    wait_for,
    write_video,
)
from fakemavi import AssetRecord, CallRecord, FakeMavi, Fault, UploadRecord

BACKGROUND = Background()
Collect = Callable[..., Any]  # the `scenario` fixture
# Retries and confirmation polls start from 0.05 s instead of 1 s (same doubling, same caps).
QUICK_RETRIES = {"retry_first": 0.05, "confirm_first": 0.05}


Run = ScenarioRun


def once(
    tmp: Path,
    stack: contextlib.ExitStack,
    arrange: Callable[[FakeMavi], None] | None = None,
    *,
    files: int = 1,
    size: int = 300_000,
    timeout: float = 60.0,
    fake_options: dict[str, Any] | None = None,
    **settings: Any,
) -> Run:
    """`run --once` over `files` new videos after `arrange` set up the fake server's faults."""
    fake = start_fake(stack, **(fake_options or {}))
    settings.setdefault("timers", QUICK_RETRIES)
    daemon = new_daemon(stack, tmp, fake, **settings)
    videos = [write_video(daemon.watch / f"clip{n:02}.mp4", size + n) for n in range(files)]
    if arrange is not None:
        arrange(fake)
    daemon.start("--once")
    return Run(fake, daemon, exit_code_within(daemon, timeout), videos=videos).read_reports()


def assert_uploaded_whole(run: Run) -> dict[str, dict[str, Any]]:
    """Exit 0, every video done, and the asset it names holds exactly its bytes."""
    assert run.exit_code == 0, run.daemon.log_text()[-3000:]
    run.assert_uploaded_whole(*run.videos)
    assert run.status["counts"]["failed"] == 0
    return run.rows


def statuses(fake: FakeMavi, endpoint: str) -> list[int]:
    return [call.status for call in fake.calls_to(endpoint)]


def gap_after(fake: FakeMavi, endpoint: str, status: int) -> float:
    """Seconds between the first `status` answer on `endpoint` and the next request there."""
    calls = fake.calls_to(endpoint)
    first = next(i for i, c in enumerate(calls) if c.status == status)
    return calls[first + 1].time - calls[first].time


# ---- 30 % of all requests fail at random ---------------------------------------------------


@BACKGROUND
def random_faults_lose_nothing(tmp: Path, stack: contextlib.ExitStack) -> Run:
    def arrange(fake: FakeMavi) -> None:
        fake.set_random_faults(0.3)  # 5xx, HTML 503, dropped connections, 429, 400 limit

    # About one attempt in three fails, and the daemon backs off 0.025-0.05 s, 0.05-0.1 s...
    # per file (QUICK_RETRIES; 1 s, 2 s... by default): the unluckiest of 50 files waits
    # seconds, not minutes. Rate limits (429, 400 "exceeded") still slow the client by 1 s.
    return once(
        tmp, stack, arrange, files=50, size=20_000, timeout=200,
        concurrency=3, rate_limit_per_second=100.0,
    )  # fmt: skip


@pytest.mark.timeout(240)
def test_random_faults_lose_nothing(scenario: Collect) -> None:
    run: Run = scenario(timeout=230)
    assert_uploaded_whole(run)
    assert run.status["counts"]["done"] == 50
    # Faults were really served, and none of them let a file's bytes land twice.
    assert {500, 503, 0} <= {c.status for c in run.fake.calls}
    assert sorted(run.fake.received_sha256s()) == sorted(sha256_of(v) for v in run.videos)


# ---- one kind of fault at a time -------------------------------------------------------------


@BACKGROUND
def five_xx_bursts(tmp: Path, stack: contextlib.ExitStack) -> Run:
    def arrange(fake: FakeMavi) -> None:
        fake.inject("sign", Fault("status", 500), times=3)
        fake.inject("storage", Fault("status", 503), times=2)
        fake.inject("metadata", Fault("status", 502), times=2)

    return once(tmp, stack, arrange, files=3, concurrency=3)


def test_five_xx_bursts(scenario: Collect) -> None:
    run: Run = scenario()
    assert_uploaded_whole(run)
    assert statuses(run.fake, "sign").count(500) == 3
    assert statuses(run.fake, "storage").count(503) == 2
    assert statuses(run.fake, "metadata").count(502) == 2
    assert len(run.fake.completed) == 3  # a refused upload is not an upload


@BACKGROUND
def dropped_connections(tmp: Path, stack: contextlib.ExitStack) -> Run:
    def arrange(fake: FakeMavi) -> None:
        fake.inject("storage", Fault("drop"), times=2)  # hang up half-way through the body
        fake.inject("sign", Fault("drop"))
        fake.inject("metadata", Fault("drop"))

    return once(tmp, stack, arrange, files=2, size=3_000_000, concurrency=2)


def test_dropped_connections(scenario: Collect) -> None:
    run: Run = scenario()
    assert_uploaded_whole(run)
    assert statuses(run.fake, "storage").count(0) == 2
    # Only whole bodies were ever accepted.
    assert sorted(u.size for u in run.fake.completed) == sorted(
        v.stat().st_size for v in run.videos
    )


@BACKGROUND
def slow_responses_within_the_client_timeout(tmp: Path, stack: contextlib.ExitStack) -> Run:
    # The client's read timeout is 120 s and not configurable, so "slower than the timeout"
    # cannot be tested in a reasonable time; slow-but-in-time answers must not confuse it.
    def arrange(fake: FakeMavi) -> None:
        for endpoint in ("sign", "storage", "metadata"):
            fake.inject(endpoint, Fault("slow", delay=2.0))

    return once(tmp, stack, arrange)


def test_slow_responses_within_the_client_timeout(scenario: Collect) -> None:
    run: Run = scenario()
    assert_uploaded_whole(run)
    assert len(run.fake.completed) == 1
    assert len(run.fake.calls_to("sign")) == 1


@BACKGROUND
def rate_limited_429_with_retry_after(tmp: Path, stack: contextlib.ExitStack) -> Run:
    def arrange(fake: FakeMavi) -> None:
        fake.inject("sign", Fault("rate_limit_429", 429, retry_after=2))
        fake.inject("metadata", Fault("rate_limit_429", 429, retry_after=2))

    return once(tmp, stack, arrange)


def test_rate_limited_429_with_retry_after(scenario: Collect) -> None:
    run: Run = scenario()
    rows = assert_uploaded_whole(run)
    # Retry-After is honoured, and being told to slow down is not a failed attempt.
    assert gap_after(run.fake, "sign", 429) >= 2.0
    assert gap_after(run.fake, "metadata", 429) >= 2.0
    assert [row["attempts"] for row in rows.values()] == [0]


@BACKGROUND
def rate_limited_400_exceeded_the_limit(tmp: Path, stack: contextlib.ExitStack) -> Run:
    def arrange(fake: FakeMavi) -> None:
        fake.inject("sign", Fault("rate_limit_400", 400), times=2)
        fake.inject("metadata", Fault("rate_limit_400", 400))

    return once(tmp, stack, arrange)


def test_rate_limited_400_exceeded_the_limit(scenario: Collect) -> None:
    run: Run = scenario()
    rows = assert_uploaded_whole(run)
    assert statuses(run.fake, "sign") == [400, 400, 200]
    # A 400 is normally permanent; "Request has exceeded the limit." means slow down.
    assert gap_after(run.fake, "sign", 400) >= 1.0
    assert [row["attempts"] for row in rows.values()] == [0]


@BACKGROUND
def expired_signed_url_is_signed_again(tmp: Path, stack: contextlib.ExitStack) -> Run:
    def arrange(fake: FakeMavi) -> None:
        fake.inject("storage", Fault("expired"))

    return once(tmp, stack, arrange)


def test_expired_signed_url_is_signed_again(scenario: Collect) -> None:
    run: Run = scenario()
    rows = assert_uploaded_whole(run)
    first, second = (asset for asset in run.fake.assets)
    assert rows[str(run.videos[0])]["asset_id"] == second
    assert run.fake.assets[first].uploads_completed == 0
    assert len(run.fake.completed) == 1


@BACKGROUND
def url_that_expires_before_the_upload_is_signed_again(
    tmp: Path, stack: contextlib.ExitStack
) -> Run:
    fake = start_fake(stack)
    daemon = new_daemon(stack, tmp, fake)
    video = write_video(daemon.watch / "late.mp4", 200_000)
    fake.inject("sign", Fault("hold"))  # the asset exists; its URL waits until released
    daemon.start("--once")
    wait_for(lambda: fake.holding == 1, timeout=30, what="first asset signed, answer held")
    fake.expire_all_urls()
    fake.release_held()
    return Run(fake, daemon, exit_code_within(daemon, 60), videos=[video]).read_reports()


def test_url_that_expires_before_the_upload_is_signed_again(scenario: Collect) -> None:
    run: Run = scenario()
    rows = assert_uploaded_whole(run)
    assert len(run.fake.assets) == 2
    assert rows[str(run.videos[0])]["asset_id"] == list(run.fake.assets)[1]
    assert 400 in statuses(run.fake, "storage")


@BACKGROUND
def metadata_waiting_then_success(tmp: Path, stack: contextlib.ExitStack) -> Run:
    def arrange(fake: FakeMavi) -> None:
        fake.set_metadata_script(["WAITING", "WAITING", "UPLOADING", "UPLOADING", "SUCCESS"])

    return once(tmp, stack, arrange)


def test_metadata_waiting_then_success(scenario: Collect) -> None:
    run: Run = scenario()
    rows = assert_uploaded_whole(run)
    asset = run.fake.assets[rows[str(run.videos[0])]["asset_id"]]
    assert asset.metadata_gets >= 5
    assert len(run.fake.completed) == 1  # patience, not a second upload


@BACKGROUND
def metadata_failed_uploads_again(tmp: Path, stack: contextlib.ExitStack) -> Run:
    def arrange(fake: FakeMavi) -> None:
        fake.set_metadata_script(["FAILED"], times=1)

    return once(tmp, stack, arrange)


def test_metadata_failed_uploads_again(scenario: Collect) -> None:
    run: Run = scenario()
    rows = assert_uploaded_whole(run)
    failed, accepted = run.fake.completed
    assert failed.asset_id != accepted.asset_id  # a new asset, not the failed one again
    assert failed.sha256 == accepted.sha256 == sha256_of(run.videos[0])
    assert rows[str(run.videos[0])]["asset_id"] == accepted.asset_id


@BACKGROUND
def malformed_json_and_html_error_pages(tmp: Path, stack: contextlib.ExitStack) -> Run:
    def arrange(fake: FakeMavi) -> None:
        fake.inject("sign", Fault("malformed"))
        fake.inject("sign", Fault("html", 502))
        fake.inject("metadata", Fault("html", 504))
        fake.inject("metadata", Fault("malformed"))

    return once(tmp, stack, arrange)


def test_malformed_json_and_html_error_pages(scenario: Collect) -> None:
    run: Run = scenario()
    assert_uploaded_whole(run)
    assert statuses(run.fake, "sign") == [200, 502, 200]  # the first 200 carried "{not json"
    assert statuses(run.fake, "metadata")[:2] == [504, 200]
    assert len(run.fake.completed) == 1


@BACKGROUND
def html_error_page_from_storage(tmp: Path, stack: contextlib.ExitStack) -> Run:
    def arrange(fake: FakeMavi) -> None:
        fake.inject("storage", Fault("html", 503))  # a proxy's page instead of GCS's XML

    return once(tmp, stack, arrange)


def test_html_error_page_from_storage(scenario: Collect) -> None:
    run: Run = scenario()
    assert_uploaded_whole(run)
    assert statuses(run.fake, "storage") == [503, 204]
    assert len(run.fake.assets) == 1  # a server error is retried with the same signed URL


@BACKGROUND
def success_code_0000(tmp: Path, stack: contextlib.ExitStack) -> Run:
    return once(tmp, stack, files=2, fake_options={"code_style": "0000"})


def test_success_code_0000(scenario: Collect) -> None:
    run: Run = scenario()
    assert_uploaded_whole(run)
    assert len(run.fake.completed) == 2


# ---- the rate limit, measured at the server --------------------------------------------------


class SeparateFake:
    """The fake MAVI in a process of its own: threads busy with other scenarios in this one
    cannot delay its clock readings, so arrival times are measured as a server sees them."""

    def __init__(self, tmp: Path, stack: contextlib.ExitStack) -> None:
        self._dump = tmp / "fake-records.json"
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("fakemavi.py")), "--port", "0",
             "--key", API_KEY, "--dump", str(self._dump)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        stack.callback(self._stop)
        assert self._proc.stdout is not None
        self.api_base: str = json.loads(self._proc.stdout.readline())["api_base"]

    def _stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            self._proc.wait(timeout=30)

    def records(self) -> FakeMavi:
        """Stop the server; its records in a FakeMavi that was never started."""
        self._stop()
        doc = json.loads(self._dump.read_text())
        fake = FakeMavi(API_KEY)
        fake.calls = [CallRecord(**call) for call in doc["calls"]]
        fake.completed = [UploadRecord(**upload, body=None) for upload in doc["completed"]]
        fake.uploads = {upload.asset_id: upload for upload in fake.completed}
        fake.assets = {asset["asset_id"]: AssetRecord(**asset) for asset in doc["assets"]}
        return fake


@BACKGROUND
def rate_limit_holds_at_the_server(tmp: Path, stack: contextlib.ExitStack) -> Run:
    server = SeparateFake(tmp, stack)
    placeholder = FakeMavi(API_KEY)  # DaemonProcess only reads its api_base
    placeholder.api_base = server.api_base
    daemon = new_daemon(stack, tmp, placeholder, concurrency=4, rate_limit_per_second=2.0)
    videos = [write_video(daemon.watch / f"clip{n:02}.mp4", 20_000 + n) for n in range(12)]
    daemon.start("--once")
    code = exit_code_within(daemon, 60)
    return Run(server.records(), daemon, code, videos=videos).read_reports()


def test_rate_limit_holds_at_the_server(scenario: Collect) -> None:
    run: Run = scenario()
    assert_uploaded_whole(run)
    for endpoint in ("sign", "storage", "metadata"):
        arrivals = sorted(call.time for call in run.fake.calls_to(endpoint))
        assert len(arrivals) >= 12
        # MAVI counts arrivals: any 1 s window may hold at most 2 of them.
        tightest = min(arrivals[n + 2] - arrivals[n] for n in range(len(arrivals) - 2))
        assert run.fake.max_calls_in_window(endpoint, 1.0) <= 2, (
            f"{endpoint}: 3 requests arrived within {tightest:.3f} s"
        )


# ---- global pause on 402 ---------------------------------------------------------------------


PROBE_EVERY = 2.0  # [timers] pause_probe_every: one probe a minute by default


@BACKGROUND
def payment_required_pauses_everything(tmp: Path, stack: contextlib.ExitStack) -> Run:
    fake = start_fake(stack)
    timers = {"pause_probe_every": PROBE_EVERY}
    daemon = new_daemon(stack, tmp, fake, concurrency=2, timers=timers)
    videos = [write_video(daemon.watch / f"clip{n}.mp4", 50_000 + n) for n in range(3)]
    fake.api_status_override = 402
    daemon.start()
    daemon.wait_ready()
    paused = wait_for(lambda: daemon.status()["paused"], timeout=30, what="paused")

    def api_calls() -> list[CallRecord]:
        return sorted(fake.calls_to("sign") + fake.calls_to("metadata"), key=lambda c: c.time)

    # Probes go on while paused (each one answered 402), one per PROBE_EVERY at most.
    wait_for(lambda: len(api_calls()) >= 4, timeout=30, what="three probes after the pause")
    calls = api_calls()

    def all_waiting() -> list[dict[str, Any]] | None:
        # A probe holds its row `uploading` for the moment of its call: look between probes.
        rows = daemon.files()
        return rows if {row["state"] for row in rows} <= {"settling", "queued"} else None

    while_paused = wait_for(all_waiting, timeout=30, what="every file waiting between probes")
    fake.api_status_override = None
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(
        lambda: logged_done(daemon) >= {str(v) for v in videos},
        timeout=30,
        what="all files done after SIGHUP",
    )
    seen = {"paused": paused, "calls": calls, "while_paused": while_paused}
    return Run(fake, daemon, 0, videos=videos, seen=seen).read_reports()


def test_payment_required_pauses_everything(scenario: Collect) -> None:
    run: Run = scenario()
    paused = run.seen["paused"]
    assert paused["reason"].startswith("402 "), paused
    assert "balance" in paused["reason"]
    assert paused["since"]
    calls: list[CallRecord] = run.seen["calls"]
    assert {call.status for call in calls} == {402}
    # The first call trips the pause (the other worker's may cross it); then one probe per
    # interval. Arrival times at the server: half a second for the way there on a loaded
    # machine (a daemon without the gate would probe at once, many times a second).
    gaps = [later.time - earlier.time for earlier, later in itertools.pairwise(calls[1:])]
    assert gaps and min(gaps) >= PROBE_EVERY - 0.5, gaps
    # Nothing failed (nor half-sent): every file waits in the queue for the pause to lift.
    assert {row["state"] for row in run.seen["while_paused"]} <= {"settling", "queued"}
    assert run.status["paused"] is None
    assert run.status["counts"]["done"] == 3
    assert_uploaded_whole(run)


# ---- reports while the daemon creates its journal --------------------------------------------


def test_reports_while_the_journal_is_being_created(
    daemon_factory: Callable[..., DaemonProcess],
) -> None:
    daemon = daemon_factory()
    # The moment a daemon starting up has created the journal file but not its tables yet.
    daemon.state_dir.mkdir(mode=0o700)
    (daemon.state_dir / "journal.sqlite3").touch(mode=0o600)
    status = daemon.cli("status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["counts"]["done"] == 0
    listing = daemon.cli("list", "--json")
    assert listing.returncode == 0, listing.stderr
    assert json.loads(listing.stdout) == []
