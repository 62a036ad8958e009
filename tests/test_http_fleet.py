"""http_listen in fleet mode: two daemons on one PostgreSQL journal. The journal's gauges and
/api/status are the fleet's (either host says the same as `status --json`), the counters each
host's own."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from conftest import DaemonProcess, wait_for, write_video
from fakemavi import FakeMavi
from test_http_e2e import api_status, base_url, scrape


def without_heartbeats(doc: dict[str, Any]) -> dict[str, Any]:
    """The document minus what the hosts' heartbeats move between two reads."""
    hosts = [{k: v for k, v in h.items() if k != "last_seen"} for h in doc["hosts"]]
    return {**doc, "hosts": hosts}


def test_fleet_gauges_are_the_fleets_and_counters_each_hosts(
    tmp_path: Path, pg_url: str, fake: FakeMavi
) -> None:
    hosts: dict[str, DaemonProcess] = {}
    sizes: dict[str, int] = {}
    for n, name in enumerate(("bay-1", "bay-2")):
        watch = tmp_path / name / "watch"
        watch.mkdir(parents=True)
        hosts[name] = DaemonProcess(
            tmp_path / name, fake, watch, journal_url=pg_url, host_id=name,
            http_listen="127.0.0.1:0",
        )  # fmt: skip
        # A host's own folder: only that host uploads its files.
        sizes[name] = write_video(watch / f"{name}.mp4", 30_000 + 5_000 * n).stat().st_size
    try:
        for daemon in hosts.values():
            daemon.start()
        urls = {name: base_url(daemon) for name, daemon in hosts.items()}
        wait_for(
            lambda: api_status(urls["bay-1"])["counts"]["done"] == 2, timeout=60,
            what="both hosts' files done",
        )  # fmt: skip
        for name, daemon in hosts.items():
            samples = scrape(urls[name])
            assert samples["mavi_uploader_files"][(("state", "done"),)] == 2  # the fleet's
            assert samples["mavi_uploader_uploaded_bytes_total"][()] == sizes[name]  # its own
            served = api_status(urls[name])
            assert served["journal"] == "postgresql"
            assert {h["host_id"] for h in served["hosts"]} == set(hosts)
            assert without_heartbeats(served) == without_heartbeats(daemon.cli_status())
    finally:
        for daemon in hosts.values():
            if daemon.proc is not None and daemon.proc.poll() is None:
                assert daemon.kill(signal.SIGTERM) == 0
