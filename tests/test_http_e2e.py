"""http_listen end to end: the daemon as a subprocess, the fake MAVI, prometheus-client's parser
and a real headless Chromium. Metrics and the page must agree with `status --json` and with
what the fake saw; nothing served holds a secret; nothing served changes anything."""

from __future__ import annotations

import collections
import http.client
import json
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

from browser import dump_dom, parse_dom
from conftest import API_KEY, DaemonProcess, logged, wait_for, write_video
from fakemavi import CallRecord, FakeMavi, Fault

DaemonFactory = Callable[..., DaemonProcess]
Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]
# Quick retries and progress notes: the test waits on them, never on the defaults.
TIMERS = {"retry_first": 0.2, "confirm_first": 0.2, "first_check": 0.2, "progress_every": 0.1}


def base_url(daemon: DaemonProcess) -> str:
    """Where the daemon serves (it logs the port the system gave it for port 0)."""
    found = wait_for(lambda: logged(daemon, event="http listening"), what="http listening")
    return str(found[-1]["url"]).rstrip("/")


def fetch(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.request(method, parts.path or "/")
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def scrape(base: str) -> Samples:
    status, headers, body = fetch(base + "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain"), body
    found: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def outcome_seen(call: CallRecord) -> str:
    """What the daemon should have counted for a request, from the fake's side of it."""
    if call.status == 0:
        return "network_error"  # the fake hung up without answering
    if call.status == 429:
        return "rate_limited"
    if 200 <= call.status < 300:
        return "ok"
    if call.status == 404:
        return "not_found"
    return "server_error" if call.status >= 500 else "client_error"


def requests_counted(samples: Samples) -> collections.Counter[tuple[str, str]]:
    counted: collections.Counter[tuple[str, str]] = collections.Counter()
    for labels, value in samples["mavi_uploader_api_requests_total"].items():
        named = dict(labels)
        counted[named["endpoint"], named["outcome"]] = int(value)
    return +counted  # the zeros dropped


def requests_made(fake: FakeMavi) -> collections.Counter[tuple[str, str]]:
    return collections.Counter(
        (c.endpoint, outcome_seen(c)) for c in fake.calls if c.endpoint != "other"
    )


def api_status(base: str) -> dict[str, Any]:
    status, headers, body = fetch(base + "/api/status")
    assert status == 200 and headers["content-type"] == "application/json", body
    doc: dict[str, Any] = json.loads(body)
    return doc


def no_secrets(fake: FakeMavi, *bodies: bytes) -> None:
    signatures = [a.signature for a in fake.assets.values()]
    for body in bodies:
        text = body.decode()
        assert API_KEY not in text
        assert "X-Goog-Signature" not in text and "?X-Goog" not in text
        assert not [s for s in signatures if s in text]


def test_metrics_and_api_status_agree_with_the_journal(
    fake: FakeMavi, daemon_factory: DaemonFactory
) -> None:
    daemon = daemon_factory(http_listen="127.0.0.1:0", timers=TIMERS)
    # One of each outcome the daemon can meet and get past.
    fake.inject("sign", Fault("status", 500))
    fake.inject("storage", Fault("status", 503))
    fake.inject("metadata", Fault("rate_limit_429", 429, retry_after=0.1))
    fake.inject("metadata", Fault("drop"))
    videos = [write_video(daemon.watch / f"clip{n}.mp4", 20_000 + 7_000 * n) for n in range(3)]
    daemon.start()
    base = base_url(daemon)
    wait_for(lambda: daemon.status()["counts"]["done"] == 3, timeout=60, what="3 files done")

    samples = scrape(base)
    status = daemon.cli_status()  # the command itself: the contract
    files = {dict(k)["state"]: int(v) for k, v in samples["mavi_uploader_files"].items()}
    assert files == status["counts"]
    assert samples["mavi_uploader_paused"][()] == 0
    assert samples["mavi_uploader_handoffs_owed"][()] == status.get("handoffs", {}).get("owed", 0)
    sizes = sum(v.stat().st_size for v in videos)
    assert sizes == sum(u.size for u in fake.completed)
    assert samples["mavi_uploader_uploaded_bytes_total"][()] == sizes
    assert samples["mavi_uploader_upload_seconds_count"][()] == 3
    assert samples["mavi_uploader_upload_seconds_sum"][()] > 0
    assert samples["mavi_uploader_upload_seconds_bucket"][(("le", "+Inf"),)] == 3
    made = requests_made(fake)
    assert {o for _, o in made} >= {"ok", "server_error", "rate_limited", "network_error"}, made
    assert requests_counted(samples) == made
    assert len(samples["mavi_uploader_api_requests_total"]) == 3 * 6  # zeros exported too
    assert api_status(base) == status

    # Paused: the key stops working; the gauge and the document say so, and the 401s count.
    fake.set_api_key("another-key")
    write_video(daemon.watch / "while-paused.mp4", 9_000)
    wait_for(lambda: daemon.status()["paused"], timeout=30, what="uploads paused")
    # The fake records a call when it arrives, the daemon counts it when the answer comes:
    # a second worker's 401 may be in between for a moment.
    samples = wait_for(
        lambda: (got := scrape(base)) and requests_counted(got) == requests_made(fake) and got,
        what="every call the fake saw counted",
    )
    assert samples["mavi_uploader_paused"][()] == 1
    paused = api_status(base)["paused"]
    assert paused == daemon.cli_status()["paused"] and "401" in paused["reason"]
    assert requests_counted(samples)["sign", "client_error"] >= 1

    # Read-only: other methods are refused and change nothing.
    before = daemon.status()["counts"]
    for path in ("/", "/metrics", "/api/status"):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            refused, headers, _ = fetch(base + path, method)
            assert refused == 405 and headers["allow"] == "GET, HEAD", (method, path)
    assert daemon.status()["counts"] == before
    bodies = [fetch(base + p)[2] for p in ("/", "/metrics", "/api/status")]
    no_secrets(fake, *bodies)

    # SIGTERM: a warm stop, and the port is closed.
    assert daemon.kill(signal.SIGTERM) == 0, daemon.log_text()[-3000:]
    port = urlsplit(base).port
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port or 0)) != 0


def listening_addresses(port: int) -> set[str]:
    """The local addresses (hex, as /proc/net has them) of the sockets listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        lines = Path(table).read_text().splitlines()[1:] if Path(table).exists() else []
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_a_bare_port_listens_on_loopback_only(
    fake: FakeMavi, daemon_factory: DaemonFactory
) -> None:
    with socket.socket() as spare:  # a port free a moment ago (the daemon takes it next)
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
    daemon = daemon_factory(http_listen=port)  # a TOML integer: the port alone
    daemon.start()
    assert base_url(daemon) == f"http://127.0.0.1:{port}"
    assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, and nothing else
    assert fetch(f"http://127.0.0.1:{port}/api/status")[0] == 200


def test_an_address_in_use_exits_2_naming_the_key(
    fake: FakeMavi, daemon_factory: DaemonFactory
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        daemon = daemon_factory(http_listen=f"127.0.0.1:{port}")
        assert daemon.start().wait_exit(60) == 2
    text = daemon.log_text()
    assert f"http_listen 127.0.0.1:{port}" in text and "already in use" in text, text


def test_status_page_in_chromium(
    fake: FakeMavi, daemon_factory: DaemonFactory, chromium: str
) -> None:
    daemon = daemon_factory(http_listen="127.0.0.1:0", concurrency=1, timers=TIMERS)
    fake.inject("sign", Fault("status", 400))  # the first file is refused: a recent error
    rejected = write_video(daemon.watch / "rejected.mp4", 11_000)
    daemon.start()
    base = base_url(daemon)
    wait_for(lambda: daemon.status()["counts"]["failed"] == 1, timeout=30, what="one failed")
    done = write_video(daemon.watch / "done.mp4", 12_000)
    wait_for(lambda: daemon.status()["counts"]["done"] == 1, timeout=30, what="one done")
    # A file name is untrusted input: markup in it must reach the page as text.
    held_name = "<img src=x onerror=\"document.title='pwned'\">&amp; held.mp4"
    fake.inject("storage", Fault("hold"))
    held = write_video(daemon.watch / held_name, 300_000)
    try:
        wait_for(lambda: fake.holding == 1, timeout=30, what="the upload held by storage")

        def in_flight() -> dict[str, Any] | None:
            uploads = daemon.status()["uploads"]
            return uploads[0] if uploads and uploads[0]["bytes_sent"] > 0 else None

        upload = wait_for(in_flight, what="progress of the held upload journaled")
        dom = parse_dom(dump_dom(base + "/"))
    finally:
        fake.release_held()

    title = dom.find_all("title")
    assert [t.text for t in title] == ["mavi-uploader"]  # the name's script never ran
    assert not dom.find_all("img")
    counts = {row.attrs["data-state"]: row.text for row in dom.by_id("counts").find_all("tr")}
    assert counts["done"] == "done1" and counts["failed"] == "failed1"
    assert counts["uploading"] == "uploading1"
    rows = dom.by_id("uploads").find_all("tr", data_file_id=str(upload["id"]))
    assert len(rows) == 1 and str(held) in rows[0].text
    bars = rows[0].find_all("progress")
    assert len(bars) == 1
    assert int(bars[0].attrs["max"]) == held.stat().st_size
    assert 0 < int(bars[0].attrs["value"]) <= held.stat().st_size
    assert "ETA" in bars[0].attrs["aria-valuetext"] and bars[0].attrs["aria-label"] == str(held)
    assert not dom.by_id("uploads-section").attrs.get("hidden")
    errors = dom.by_id("errors").text
    assert str(rejected) in errors and "400" in errors
    assert str(done) not in dom.by_id("errors").text
    assert "hidden" in dom.by_id("paused").attrs  # not paused
    summary = dom.by_id("summary").text
    assert "daemon running" in summary and "journal sqlite" in summary
    wait_for(lambda: daemon.status()["counts"]["done"] == 2, timeout=30, what="held one done")


def test_handoffs_owed_agree_with_status(
    fake: FakeMavi, daemon_factory: Callable[..., DaemonProcess]
) -> None:
    # A hook that always fails: the finished file keeps owing its hand-off.
    failing = [sys.executable, "-c", "import sys; sys.exit(3)"]
    daemon = daemon_factory(http_listen="127.0.0.1:0", on_done=failing, timers=TIMERS)
    write_video(daemon.watch / "a.mp4", 20_000)
    daemon.start()
    base = base_url(daemon)

    def owed() -> dict[str, Any] | None:
        doc = daemon.cli_status()
        handoffs: dict[str, Any] = doc["handoffs"]
        return handoffs if handoffs["owed"] == 1 and handoffs["failing"] == 1 else None

    wait_for(owed, timeout=30, what="the hand-off owed and failing")
    samples = scrape(base)
    assert samples["mavi_uploader_handoffs_owed"][()] == 1
    assert api_status(base)["handoffs"]["owed"] == 1
