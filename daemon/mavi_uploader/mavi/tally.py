"""What the client tells whoever keeps score: each request's outcome, each accepted upload.

The client knows nothing of Prometheus: the daemon hands it a `Tally` (service/metrics.py keeps
the counters and the histogram); without one, nothing is kept.
"""

from __future__ import annotations

from typing import Protocol

from mavi_uploader.mavi.errors import RateLimited, TransientError

# Outcomes of one HTTP request to MAVI or its storage (the `outcome` label).
OK = "ok"  # a 2xx answer the client could use
NOT_FOUND = "not_found"  # metadata: MAVI does not know the asset (yet): an answer, not an error
RATE_LIMITED = "rate_limited"  # 429, or 400 "Request has exceeded the limit."
CLIENT_ERROR = "client_error"  # 4xx: a bad key or balance (401/402/403), a refused file or URL
SERVER_ERROR = "server_error"  # 5xx, 408, a redirect, or an answer the client cannot read
NETWORK_ERROR = "network_error"  # no answer: refused, reset, timed out, TLS failed
OUTCOMES = (OK, NOT_FOUND, RATE_LIMITED, CLIENT_ERROR, SERVER_ERROR, NETWORK_ERROR)
ENDPOINTS = ("sign", "storage", "metadata")


class Tally(Protocol):
    def request(self, endpoint: str, outcome: str) -> None:
        """One request to `endpoint` ended with `outcome` (one of OUTCOMES)."""

    def accepted(self, size: int, seconds: float) -> None:
        """Storage accepted a complete upload of `size` bytes sent in `seconds`."""


class NoTally:
    def request(self, endpoint: str, outcome: str) -> None:
        pass

    def accepted(self, size: int, seconds: float) -> None:
        pass


def outcome(status: int | None, error: BaseException | None) -> str | None:
    """The outcome of a request that got HTTP `status` (None: no answer) and ended in `error`
    (None: the call returned). None: not a request's outcome to count (the daemon stopping cut
    it, or the local file could not be read)."""
    if isinstance(error, RateLimited):
        return RATE_LIMITED
    if status is None:
        return NETWORK_ERROR if isinstance(error, TransientError) else None
    if error is None:
        return NOT_FOUND if status == 404 else OK
    return SERVER_ERROR if isinstance(error, TransientError) else CLIENT_ERROR
