"""The `status --json` document, read by the running daemon for its HTTP endpoint.

It opens the journal the way `status` does (`open_for_reports`: read-only SQLite, or the whole
fleet's view), not the daemon's working store, whose in-flight queries see only this host's
files: the served document must be the one `status --json` prints. Every read runs on one
thread of its own, because the SQLite store keeps a connection per thread and the HTTP server
gives each request a new thread.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent import futures
from typing import Any

from mavi_uploader.config.model import Config
from mavi_uploader.journal import JournalError, JournalStore, open_for_reports
from mavi_uploader.service.fleet import fleet_of, journal_kind
from mavi_uploader.service.lock import probe
from mavi_uploader.service.status import bandwidth_document, status_document


class StatusReports:
    def __init__(self, config: Callable[[], Config], *, wait: float = 30.0) -> None:
        self._config = config  # the daemon's config now (a SIGHUP may change the bandwidth)
        self._wait = wait  # a fleet's journal answers or fails within 10 s (Fleet.wait)
        self._reader = futures.ThreadPoolExecutor(1, thread_name_prefix="http-status")
        self._journal: JournalStore | None = None

    def document(self) -> dict[str, Any]:
        """What `status --json` prints now (JournalError if the journal does not answer)."""
        try:
            pending = self._reader.submit(self._read)
        except RuntimeError:  # closed: a request that raced the daemon's stop
            raise JournalError("the daemon is stopping") from None
        try:
            return pending.result(timeout=self._wait)
        except futures.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            raise JournalError(f"no answer in {self._wait:.0f} s") from None

    def _read(self) -> dict[str, Any]:
        config = self._config()
        if self._journal is None:  # None until the daemon has created it, which it does first
            self._journal = open_for_reports(config.state_dir, fleet_of(config))
        return status_document(
            config.state_dir, self._journal, probe(config.state_dir),
            kind=journal_kind(config), bandwidth=bandwidth_document(config),
        )  # fmt: skip

    def close(self) -> None:
        self._reader.submit(self._close)
        self._reader.shutdown(wait=True)

    def _close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
