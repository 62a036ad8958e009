"""Scrub secrets (API key, signed-URL queries, URL passwords) out of any text we print or store."""

from __future__ import annotations

import re
import threading

# A signed URL's query string is its credential (X-Goog-Signature, X-Goog-Credential, ...).
# Any URL's query is dropped: we never need it in a log line or an error message.
_URL_QUERY = re.compile(r"(?P<base>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#\"'<>]+)\?[^\s\"'<>]+")
# urllib3 prints a URL's path and query without its scheme and host ("url: /b/x?token=...").
# Only a query with a "key=value" in it: a file named "take 2?.mp4" keeps its name in reports.
_PATH_QUERY = re.compile(r"(?P<base>(?<![\w/:.-])/[^\s?#\"'<>]*)\?(?=[^\s\"'<>]*=)[^\s\"'<>]+")
# Bare signature parameters can show up without their URL (urllib3 prints paths).
_SIGNATURE_PARAM = re.compile(r"(?i)(X-Goog-[A-Za-z-]+|X-Amz-[A-Za-z-]+|Signature|sig)=[^&\s\"']+")
# A password in a URL's user info ("postgresql://user:pw@host/db", a fleet's journal URL): masked
# however short it is, where a registered secret needs 6 characters. Greedy up to the last "@"
# before the path, as urllib and libpq read an authority.
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/?#@:\"'<>]*:)[^\s/?#\"'<>]*@"
)
REDACTED = "<redacted>"

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Remember a secret (the API key) so it is masked wherever it appears later."""
    # Very short strings would mask ordinary words; real API keys are long.
    if len(value) >= 6:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Return `text` with registered secrets, URL passwords and URL query strings replaced."""
    if not text:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = hide_url_passwords(text)
    text = _URL_QUERY.sub(lambda m: f"{m.group('base')}?{REDACTED}", text)
    text = _PATH_QUERY.sub(lambda m: f"{m.group('base')}?{REDACTED}", text)
    return _SIGNATURE_PARAM.sub(lambda m: f"{m.group(1)}={REDACTED}", text)


def hide_url_passwords(text: str, mask: str = REDACTED) -> str:
    """`text` with the password of every URL in it (`scheme://user:PASSWORD@host`) masked."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{mask}@", text)


def url_without_query(url: str) -> str:
    """The URL as it may be shown: scheme, host and path only."""
    return url.split("?", 1)[0].split("#", 1)[0]
