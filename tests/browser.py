"""A real headless Chromium for the status page's tests, and a reader for the DOM it dumps.

Chromium runs once per page load: `--dump-dom` prints the DOM after the page's scripts ran for
`--virtual-time-budget` milliseconds of virtual time (which waits for the page's fetches), so a
test sees what a person would see, with no DevTools client. Where no Chromium is installed the
tests skip with the reason; with MAVI_REQUIRE_CHROMIUM=1 (set by .ci/run) they fail instead.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser

REQUIRE_ENV = "MAVI_REQUIRE_CHROMIUM"
_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    return next(filter(None, map(shutil.which, _NAMES)), None)


def why_unavailable() -> str | None:
    if find_chromium() is None:
        return f"no Chromium on PATH (looked for {', '.join(_NAMES)}; apt-get install chromium)"
    return None


def dump_dom(url: str, *, budget_ms: int = 5000, timeout: float = 90.0) -> str:
    """The DOM of `url` after its scripts ran (serialized HTML)."""
    chromium = find_chromium()
    assert chromium is not None, why_unavailable()
    # A profile of its own, thrown away: nothing written to the user's home.
    with tempfile.TemporaryDirectory(prefix="mavi-chromium-") as profile:
        result = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
             "--dump-dom", url],
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
    assert result.returncode == 0, f"chromium failed ({result.returncode}): {result.stderr[-2000:]}"
    return result.stdout


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""  # all text inside, as textContent has it
    children: list[Element] = field(default_factory=list)

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Element]:
        found = []
        for child in self.children:
            if (tag is None or child.tag == tag) and all(
                child.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items()
            ):
                found.append(child)
            found += child.find_all(tag, **attrs)
        return found

    def by_id(self, element_id: str) -> Element:
        found = self.find_all(id=element_id)
        assert len(found) == 1, f"{len(found)} elements with id {element_id!r}"
        return found[0]


_VOID = {"meta", "link", "br", "hr", "img", "input", "area", "base", "col", "embed", "source"}


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self._open = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self._open[-1].children.append(element)
        if tag not in _VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self._open) - 1, 0, -1):
            if self._open[depth].tag == tag:
                del self._open[depth:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data


def parse_dom(html: str) -> Element:
    tree = _Tree()
    tree.feed(html)
    tree.close()
    return tree.root
