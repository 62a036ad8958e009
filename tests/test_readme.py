"""The README's config reference must match the code: every key, and the simple defaults."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from mavi_uploader.config import settings as config_module
from mavi_uploader.config.settings import WatchConfig, load_config
from mavi_uploader.units import parse_bandwidth

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

README = Path(__file__).resolve().parent.parent / "README.md"


def table_after(heading: str) -> dict[str, str]:
    """key -> default column of the first table after `heading` in the README."""
    text = README.read_text()
    start = text.index(heading)
    rows: dict[str, str] = {}
    for line in text[start:].splitlines()[1:]:
        if rows and not line.startswith("|"):
            break
        match = re.match(r"\| `(\w+)` \| (.*?) \|", line)
        if match:
            rows[match.group(1)] = match.group(2).strip()
    return rows


def as_toml(value: str) -> Any:
    try:
        return tomllib.loads(f"v = {value.strip('`')}")["v"]
    except tomllib.TOMLDecodeError:
        return None  # prose, e.g. "none" or "see ..."


def test_every_top_level_key_is_documented() -> None:
    documented = set(table_after("### Config reference"))
    assert documented == set(config_module._TOP_KEYS) - {"watch"}


def test_every_watch_key_is_documented() -> None:
    assert set(table_after("Each `[[watch]]` table:")) == set(config_module._WATCH_KEYS)


def test_documented_defaults_are_the_real_ones(tmp_path: Path) -> None:
    config = load_config(
        config_path=None, env={"MAVI_UPLOADER_CONFIG": ""}, require_api_key=False,
        watch_dirs=[str(tmp_path)],
    )  # fmt: skip
    checked = 0
    for key, default in table_after("### Config reference").items():
        value = as_toml(default)
        if value is None or not hasattr(config, key):
            continue
        actual = getattr(config, key)
        if key == "bandwidth_limit":
            value = parse_bandwidth(value)
        actual = getattr(actual, "value", actual)
        assert actual == value, f"README says {key} defaults to {default}, code: {actual!r}"
        checked += 1
    assert checked >= 9
    watch = WatchConfig(path=tmp_path)
    for key, default in table_after("Each `[[watch]]` table:").items():
        value = as_toml(default)
        if value is not None:
            actual = getattr(watch, key)
            assert (list(actual) if isinstance(actual, tuple) else actual) == value, key


@pytest.mark.parametrize("var", ["MAVI_API_KEY", "MAVI_API_BASE", "MAVI_UPLOADER_CONFIG",
                                 "MAVI_UPLOADER_STATE_DIR", "MAVI_UPLOADER_JOURNAL_URL",
                                 "MAVI_UPLOADER_HOST_ID"])  # fmt: skip
def test_env_vars_are_documented(var: str) -> None:
    assert f"`{var}`" in README.read_text()
