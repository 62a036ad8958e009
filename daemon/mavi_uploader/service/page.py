"""The status page (status_page.html, shipped in the package) and the headers it is served with.

The page is static: its script fetches /api/status and writes every value as text. Its inline
<style> and <script> are allowed by their sha256 in the Content-Security-Policy, computed here
from the file itself, so no 'unsafe-inline' is needed and an injected script could not run.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.resources
import re

_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)

# Everything else is refused: no external assets, no frames, no forms, no plugins.
_BASE_POLICY = (
    "default-src 'none'; connect-src 'self'; base-uri 'none'; form-action 'none';"
    " frame-ancestors 'none'"
)
# For the JSON and text responses: nothing may run or load from them.
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'; sandbox"


@functools.cache
def page() -> bytes:
    return importlib.resources.files(__package__).joinpath("status_page.html").read_bytes()


@functools.cache
def page_policy() -> str:
    """The page's Content-Security-Policy: its own inline style and script, by hash."""
    sources: dict[str, list[str]] = {"script": [], "style": []}
    for tag, body in _INLINE.findall(page().decode()):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        sources[tag].append(f"'sha256-{digest}'")
    return (
        f"{_BASE_POLICY}; script-src {' '.join(sources['script'])};"
        f" style-src {' '.join(sources['style'])}"
    )
