"""The daemon's Prometheus metrics (names fixed by the contract), in prometheus-client's format.

Two kinds, on purpose:
- read from the journal at scrape time, through the `status --json` document, so they always
  agree with it: `mavi_uploader_files{state}`, `mavi_uploader_paused`,
  `mavi_uploader_handoffs_owed`. In fleet mode they are the fleet's (one journal);
- kept in this process since it started (Prometheus expects counters to reset on a restart):
  `mavi_uploader_api_requests_total{endpoint,outcome}`, `mavi_uploader_uploaded_bytes_total`,
  `mavi_uploader_upload_seconds`. In fleet mode each host counts its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from mavi_uploader.core.records import State
from mavi_uploader.mavi.tally import ENDPOINTS, OUTCOMES

# The classic text format: every Prometheus (and most other scrapers) reads it.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# From a small clip on a LAN to a long master over a slow uplink.
UPLOAD_SECONDS_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400)

StatusSource = Callable[[], dict[str, Any]]  # the `status --json` document, read now


class Metrics:
    """The client's tally (mavi/tally.py) plus, once `watch` is called, the journal's gauges;
    `render()` is one scrape."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "mavi_uploader_api_requests",
            "HTTP requests to the MAVI API (sign, metadata) and its storage (the uploads), by"
            " how they ended; every attempt counts, rate-limited ones and retries included",
            ["endpoint", "outcome"],
            registry=self.registry,
        )
        for endpoint in ENDPOINTS:  # every series from the start: rate() and alerts see a 0
            for outcome in OUTCOMES:
                self._requests.labels(endpoint, outcome)
        self._bytes = Counter(
            "mavi_uploader_uploaded_bytes",
            "Bytes of the files whose complete upload storage accepted, since this daemon"
            " started (a file sent again counts again)",
            registry=self.registry,
        )
        self._seconds = Histogram(
            "mavi_uploader_upload_seconds",
            "Seconds from the first byte of an upload to storage accepting it",
            buckets=UPLOAD_SECONDS_BUCKETS,
            registry=self.registry,
        )

    def request(self, endpoint: str, outcome: str) -> None:
        self._requests.labels(endpoint, outcome).inc()

    def accepted(self, size: int, seconds: float) -> None:
        self._bytes.inc(size)
        self._seconds.observe(seconds)

    def watch(self, status: StatusSource) -> None:
        """Export the journal's gauges, read from `status` at each scrape."""
        self.registry.register(_JournalGauges(status))

    def render(self) -> bytes:
        """One scrape (JournalError if the journal does not answer)."""
        return generate_latest(self.registry)


class _JournalGauges:
    """Gauges read at scrape time from one `status --json` document, so they agree with it."""

    def __init__(self, status: StatusSource) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        doc = self._status()
        files = GaugeMetricFamily(
            "mavi_uploader_files", "Files in the journal, by state", labels=["state"]
        )
        for state in State:
            files.add_metric([state.value], doc["counts"].get(state.value, 0))
        yield files
        yield GaugeMetricFamily(
            "mavi_uploader_paused",
            "1 while uploads are paused (401/402/403: see status for the reason), else 0",
            value=1 if doc["paused"] else 0,
        )
        owed = doc["handoffs"]["owed"]  # on_done and webhook deliveries not done yet
        yield GaugeMetricFamily(
            "mavi_uploader_handoffs_owed",
            "Finished files whose on_done command or webhook has not succeeded yet",
            value=owed,
        )
