"""Reading MAVI's and storage's HTTP answers into values or typed errors (no network)."""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from typing import Any

import requests

from mavi_uploader.mavi.errors import (
    AUTH_HINTS,
    RATE_LIMIT_MESSAGE,
    SUCCESS_CODES,
    AuthProblem,
    NotFound,
    PermanentError,
    RateLimited,
    SignedUrlRejected,
    TransientError,
)

MAX_RETRY_AFTER_SECONDS = 600.0


def _retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds, clamped: a broken proxy's "inf" must not stall us forever."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:  # the other form RFC 9110 allows: an HTTP date
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - time.time()
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_SECONDS)


def _json(response: requests.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        snippet = response.text[:80].replace("\n", " ")
        raise TransientError(
            f"{what}: HTTP {response.status_code} with a non-JSON body ({snippet!r})"
        ) from None
    if not isinstance(body, dict):
        raise TransientError(f"{what}: HTTP {response.status_code} with an unexpected JSON body")
    return body


def interpret_api_response(response: requests.Response, what: str) -> dict[str, Any]:
    """Return `data` of a successful MAVI API answer or raise the matching outcome."""
    status = response.status_code
    if status in (401, 402, 403):
        raise AuthProblem(f"{status} {response.reason or 'error'}: {AUTH_HINTS[status]}")
    if status == 429:
        raise RateLimited(f"{what}: 429 rate limited", _retry_after(response))
    body = _json(response, what)
    code = body.get("code")
    msg = str(body.get("msg") or "")
    ok = (
        200 <= status < 300
        and code in SUCCESS_CODES
        and body.get("success") is not False
        and body.get("failed") is not True
    )
    if ok:
        data = body.get("data")
        if not isinstance(data, dict):
            raise TransientError(f"{what}: success without a data object")
        return data
    # HTTP status and body code are documented to agree; trust the more specific one.
    effective = code if isinstance(code, int) and code not in SUCCESS_CODES else status
    if effective in (401, 402, 403):
        raise AuthProblem(f"{effective} {msg or 'error'}: {AUTH_HINTS[effective]}")
    if effective == 429 or RATE_LIMIT_MESSAGE in msg.lower():
        raise RateLimited(f"{what}: {effective} {msg}", _retry_after(response))
    if 200 <= effective < 300:  # a success code contradicted by success/failed: say so
        flags = f"success={body.get('success')!r}, failed={body.get('failed')!r}"
        raise TransientError(f"{what}: answer {code!r} {msg!r} but {flags}")
    if effective == 408 or effective >= 500:
        raise TransientError(f"{what}: {effective} {msg}".strip())
    if effective == 404:
        raise NotFound(f"{what}: {effective} {msg}".strip())
    raise PermanentError(f"{what}: {effective} {msg}".strip())


_XML_CODE = re.compile(r"<Code>([^<]+)</Code>")


def interpret_storage_response(response: requests.Response) -> None:
    """Storage answers 2xx on success and an XML <Error> otherwise."""
    status = response.status_code
    if 200 <= status < 300:
        return
    if 300 <= status < 400:
        # Not followed: the body stream cannot be replayed, and the new URL was never signed.
        raise TransientError(f"storage: redirected (HTTP {status}); redirects are not followed")
    match = _XML_CODE.search(response.text[:4096])
    code = match.group(1) if match else ""
    if status == 429 or RATE_LIMIT_MESSAGE in response.text[:4096].lower():
        # MAVI limits uploads via signed URL too, and may say so with a 400.
        raise RateLimited(f"storage: {status} rate limited", _retry_after(response))
    if status == 408 or status >= 500:
        raise TransientError(f"storage: HTTP {status} {code}".strip())
    # GCS says ExpiredToken; some proxies say AccessDenied with "Request has expired".
    if code == "ExpiredToken" or "expired" in response.text[:4096].lower():
        raise SignedUrlRejected(f"storage: signed URL expired ({code or status})", expired=True)
    raise SignedUrlRejected(f"storage: HTTP {status} {code or 'error'}", expired=False)


def request_failed(what: str, exc: requests.RequestException) -> TransientError:
    if isinstance(exc, requests.exceptions.SSLError):
        # Never retried without verification: a bad certificate is someone's problem to fix.
        return TransientError(f"{what}: TLS verification failed ({exc})")
    if isinstance(exc, requests.Timeout):
        return TransientError(f"{what}: timed out ({type(exc).__name__})")
    if isinstance(exc, requests.ConnectionError):
        return TransientError(f"{what}: connection failed ({exc})", network=True)
    return TransientError(f"{what}: request failed ({exc})")
