"""The README must match the code: the config reference (every key, the simple defaults),
and the fleet mode steps, followed as written on a throwaway PostgreSQL."""

from __future__ import annotations

import itertools
import json
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import pgcluster
from conftest import DaemonProcess, write_video
from fakemavi import FakeMavi
from mavi_uploader.config import settings as config_module
from mavi_uploader.config.model import WatchConfig
from mavi_uploader.config.settings import load_config
from mavi_uploader.config.timetable import parse_bandwidth_limit

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
            value = parse_bandwidth_limit(value)
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


# ---- Fleet mode: the steps a newcomer follows, on a throwaway PostgreSQL --------------------

_ROLES = itertools.count(1)


def fleet_section() -> str:
    text = README.read_text()
    start = text.index("## Fleet mode")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def fenced(section: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section, re.DOTALL)


def with_value(config: str, key: str, values: list[str]) -> str:
    """`config` with the quoted values of `key` replaced, in order, by `values`."""
    found = iter(values)
    pattern = rf'(?m)^({key}\s*=\s*)"[^"]*"'
    replaced, n = re.subn(pattern, lambda m: f"{m.group(1)}{json.dumps(next(found))}", config)
    assert n == len(values), f"the README's fleet config has {n} {key} values, not {len(values)}"
    return replaced


def test_the_fleet_steps_work_as_written(
    tmp_path: Path, pg_cluster: pgcluster.Cluster, fake: FakeMavi
) -> None:
    """Create the role and database with the README's psql commands, give two hosts the
    README's config (a shared drop folder and one own folder each; host b's id from the
    environment), run host a's daemon with `run --once`, then host b's; `status --json` and
    `list --json` on either host say what the README says."""
    import psycopg  # noqa: PLC0415 - present wherever pg_cluster did not skip

    section = fleet_section()
    statements = [s for sh in fenced(section, "sh") for s in re.findall(r'psql -c "(.+)"', sh)]
    assert len(statements) == 2, statements
    toml_blocks = fenced(section, "toml")
    assert toml_blocks, "no toml block in the README's Fleet mode section"
    example = toml_blocks[0]
    documented = tomllib.loads(example)
    url = urlsplit(documented["journal_url"])
    share = documented["watch"][0]["share"]
    assert "share" not in documented["watch"][1]

    # The README's role and database, under names of this test (roles belong to the cluster).
    n = next(_ROLES)
    old_role, old_database = str(url.username), url.path.lstrip("/")
    role, database = f"{old_role}_{n}", f"{old_database}_{n}"
    names = {old_role: role, old_database: database}
    with psycopg.connect(pg_cluster.url(), autocommit=True) as conn:
        for sql in statements:
            conn.execute(re.sub(r"\w+", lambda m: names.get(m[0], m[0]), sql).encode())
    journal_url = f"{url.scheme}://{role}@127.0.0.1:{pg_cluster.port}/{database}"

    drop = tmp_path / "nas" / "drop"
    clip = write_video(drop / "clip.mp4", 120_000)
    hosts: dict[str, DaemonProcess] = {}
    own: dict[str, Path] = {}
    try:
        for name in ("a", "b"):
            own[name] = write_video(tmp_path / name / "own" / f"{name}.mp4", 90_000).parent
            daemon = DaemonProcess(tmp_path / name, fake, drop)
            config = with_value(example, "journal_url", [journal_url])
            config = with_value(config, "path", [str(drop), str(own[name])])
            if name == "a":
                config = with_value(config, "host_id", ["a"])
            else:
                daemon.env["MAVI_UPLOADER_HOST_ID"] = "b"  # the environment over the file
            # Quicker than the defaults, ahead of the README's keys (a test, not a fleet).
            daemon.config_path.write_text("settle_seconds = 0.5\n" + config)
            hosts[name] = daemon
            assert daemon.start("--once").wait_exit(90) == 0, daemon.log_text()[-2000:]

        for name, daemon in hosts.items():
            status = daemon.cli_status()
            assert status["journal"] == "postgresql"
            assert [h["host_id"] for h in status["hosts"]] == ["a", "b"], name
            assert all(h["alive"] and h["pid"] and h["last_seen"] for h in status["hosts"])
            assert status["daemon"]["running"] is False
            assert status["counts"]["done"] == 3, status  # the fleet's: both hosts' files

        by_path = {row["path"]: row for row in hosts["b"].cli_files()}
        assert by_path[str(clip)]["share"] == share
        assert by_path[str(clip)]["host_id"] == "a"  # host a got to it first
        assert by_path[f"a:{own['a'] / 'a.mp4'}"]["share"] is None  # a's own, seen from b
        assert by_path[str(own["b"] / "b.mp4")]["host_id"] == "b"
        assert {row["state"] for row in by_path.values()} == {"done"}
    finally:
        for daemon in hosts.values():
            daemon.close()
