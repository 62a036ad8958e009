"""POST one hand-off to `webhook_url`: JSON body, HMAC signature, no redirects, TLS verified.

A 2xx is delivered; anything else (a 3xx included: a redirect is never followed, the body and
its signature are for the URL configured) is a failure the runner retries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import requests

from mavi_uploader import __version__
from mavi_uploader.core.handoffs import OUTPUT_LIMIT, Attempt, shown_output
from mavi_uploader.redaction import redact, url_without_query

SIGNATURE_HEADER = "X-Mavi-Uploader-Signature"
DELIVERY_HEADER = "X-Mavi-Uploader-Delivery"  # the hand-off's id: the same on every retry
EVENT_HEADER = "X-Mavi-Uploader-Event"


def body_of(event: str, file_doc: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed)."""
    return json.dumps({"event": event, "file": file_doc}, ensure_ascii=False).encode("utf-8")


def signature(secret: str, body: bytes) -> str:
    """The header's value: sha256=<hex HMAC-SHA256 of the body, keyed with the secret>."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def post_webhook(
    url: str,
    body: bytes,
    *,
    event: str,
    delivery: int,
    secret: str,
    timeout: float,
    session: requests.Session | None = None,
) -> Attempt:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"mavi-uploader/{__version__}",
        EVENT_HEADER: event,
        DELIVERY_HEADER: str(delivery),
    }
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, body)
    http = session or requests.Session()
    try:
        with http.post(
            url, data=body, headers=headers, timeout=(timeout, timeout), allow_redirects=False,
            verify=True, stream=True,
        ) as answer:  # fmt: skip
            said = _start_of(answer)
            status = answer.status_code
    except requests.RequestException as exc:
        # Messages quote the URL: its query (a receiver's token) is redacted.
        return Attempt(False, redact(f"{type(exc).__name__}: {exc}"))
    finally:
        if session is None:
            http.close()
    if 200 <= status < 300:
        return Attempt(True, f"HTTP {status}")
    if 300 <= status < 400:
        where = url_without_query(answer.headers.get("Location", "") or "") or "nowhere"
        return Attempt(False, f"HTTP {status} redirect to {redact(where)} (not followed)", said)
    return Attempt(False, f"HTTP {status}", said)


def _start_of(answer: requests.Response) -> str:
    """The first OUTPUT_LIMIT bytes of the receiver's answer, for the journal."""
    try:
        data = answer.raw.read(OUTPUT_LIMIT + 1, decode_content=True) or b""
    except Exception:  # urllib3's own errors too: the answer is only quoted, never needed
        return ""
    return shown_output(data, data, len(data))
