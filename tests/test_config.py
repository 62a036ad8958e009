"""Tests for mavi_uploader.config: real TOML files in tmp_path, env passed explicitly."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from mavi_uploader.config import settings as cfg
from mavi_uploader.config.model import DEFAULT_IGNORE, AfterUpload, Config, WatchConfig
from mavi_uploader.config.settings import (
    DEFAULT_API_BASE,
    DEFAULT_EXTENSIONS,
    ConfigError,
    load_config,
)
from mavi_uploader.config.timetable import Timetable
from mavi_uploader.units import parse_bandwidth

KEY = "mk-test-Sup3rSecretKeyValue-9f8e7d"
ENV = {"MAVI_API_KEY": KEY}
ORIGINAL_DEFAULT_CONFIG_PATH = cfg.default_config_path
ORIGINAL_DEFAULT_STATE_DIR = cfg.default_state_dir
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions and symlinks")
steady = Timetable.steady  # a plain bandwidth_limit: the same limit all week


@pytest.fixture(autouse=True)
def isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never read the real user config or state dir; run from a scratch cwd."""
    default_cfg = tmp_path / "default-config" / "config.toml"
    monkeypatch.setattr(cfg, "default_config_path", lambda: default_cfg)
    monkeypatch.setattr(cfg, "default_state_dir", lambda: tmp_path / "default-state")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def write(tmp_path: Path, text: str, name: str = "conf/config.toml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load(path: Path | None = None, env: dict[str, str] | None = None, **kw: Any) -> Config:
    return load_config(
        config_path=str(path) if path else None, env=ENV if env is None else env, **kw
    )


def error(path: Path | None = None, env: dict[str, str] | None = None, **kw: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load(path, env, **kw)
    return str(info.value)


# --- defaults and a full file ------------------------------------------------------------


def test_defaults_without_any_config_file(tmp_path: Path) -> None:
    c = load()
    assert c.config_file is None
    assert c.api_base == DEFAULT_API_BASE
    assert c.api_key == KEY
    assert (c.concurrency, c.settle_seconds, c.rate_limit_per_second) == (2, 5.0, 1.0)
    assert (c.bandwidth_limit, c.dedupe, c.after_upload) == (steady(0), True, AfterUpload.KEEP)
    assert c.done_dir is None
    assert c.extensions == frozenset(DEFAULT_EXTENSIONS)
    assert c.watches == ()
    assert c.state_dir == tmp_path / "default-state"
    assert c.rescan_interval_seconds == 3600.0
    assert c.warnings == ()


def test_default_paths_use_platformdirs_app_name() -> None:
    assert ORIGINAL_DEFAULT_CONFIG_PATH().name == "config.toml"
    assert ORIGINAL_DEFAULT_CONFIG_PATH().parent.name == "mavi-uploader"
    assert "mavi-uploader" in ORIGINAL_DEFAULT_STATE_DIR().parts
    assert ORIGINAL_DEFAULT_STATE_DIR().is_absolute()


def test_full_file_is_parsed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        api_base = "http://localhost:8080/api/"
        concurrency = 4
        settle_seconds = 2.5
        rate_limit_per_second = 0
        bandwidth_limit = "20M"
        dedupe = false
        after_upload = "delete"
        extensions = [".MP4", "Mov", "mkv"]
        rescan_interval_seconds = 0

        [[watch]]
        path = "/srv/in"
        recursive = false
        ignore = ["*.tmp"]
        poll = true
        poll_interval_seconds = 30
        """.replace("\n        ", "\n"),
    )
    c = load(path)
    assert c.config_file == path
    assert c.api_base == "http://localhost:8080/api"
    assert (c.concurrency, c.settle_seconds, c.rate_limit_per_second) == (4, 2.5, 0.0)
    assert (c.bandwidth_limit, c.dedupe) == (steady(20_000_000), False)
    assert c.after_upload is AfterUpload.DELETE
    assert c.extensions == frozenset({"mp4", "mov", "mkv"})
    assert c.rescan_interval_seconds == 0.0
    assert c.watches == (
        WatchConfig(Path("/srv/in"), recursive=False, ignore=("*.tmp",), poll=True,
                    poll_interval_seconds=30.0),
    )  # fmt: skip


def test_watch_defaults() -> None:
    w = WatchConfig(path=Path("/x"))
    assert (w.recursive, w.ignore, w.poll, w.poll_interval_seconds) == (
        True, DEFAULT_IGNORE, False, 10.0,
    )  # fmt: skip


def test_ints_are_accepted_for_float_keys(tmp_path: Path) -> None:
    c = load(write(tmp_path, "settle_seconds = 3\nrate_limit_per_second = 2\n"))
    assert c.settle_seconds == 3.0 and isinstance(c.settle_seconds, float)
    assert isinstance(c.rate_limit_per_second, float)


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        load().concurrency = 3  # type: ignore[misc]


def test_load_creates_no_directories(tmp_path: Path) -> None:
    path = write(tmp_path, 'state_dir = "st"\n[[watch]]\npath = "not-yet"\n')
    c = load(path)
    assert not c.state_dir.exists()
    assert not c.watches[0].path.exists()
    assert not (tmp_path / "default-state").exists()


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MAVI_API_BASE", "MAVI_UPLOADER_CONFIG", "MAVI_UPLOADER_STATE_DIR",
                 "MAVI_UPLOADER_JOURNAL_URL", "MAVI_UPLOADER_HOST_ID"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MAVI_API_KEY", "from-os-environ")
    assert load_config().api_key == "from-os-environ"


# --- precedence: flag > env > file > default ----------------------------------------------


@pytest.mark.parametrize(
    ("flag", "env_value", "in_file", "expected"),
    [
        (None, None, None, DEFAULT_API_BASE),
        (None, None, "https://file.example/v2", "https://file.example/v2"),
        (None, "https://env.example/v2/", "https://file.example/v2", "https://env.example/v2"),
        (None, "", "https://file.example/v2", "https://file.example/v2"),
        ("https://flag.example", "https://env.example", "https://file.example", "https://flag.example"),
    ],
)  # fmt: skip
def test_api_base_precedence(
    tmp_path: Path, flag: str | None, env_value: str | None, in_file: str | None, expected: str
) -> None:
    path = write(tmp_path, f'api_base = "{in_file}"\n' if in_file else "")
    env = dict(ENV) if env_value is None else {**ENV, "MAVI_API_BASE": env_value}
    assert load(path, env, api_base=flag).api_base == expected


def test_state_dir_precedence(tmp_path: Path, isolate: Path) -> None:
    path = write(tmp_path, 'state_dir = "file-state"\n')
    assert load(write(tmp_path, "", "empty.toml")).state_dir == tmp_path / "default-state"
    assert load(path).state_dir == path.parent / "file-state"  # relative to the config file
    env = {**ENV, "MAVI_UPLOADER_STATE_DIR": "env-state"}
    assert load(path, env).state_dir == isolate / "env-state"  # relative to cwd
    assert load(path, env, state_dir="flag-state").state_dir == isolate / "flag-state"
    assert load(path, env, state_dir=str(tmp_path / "abs")).state_dir == tmp_path / "abs"


def test_state_dir_expands_tilde(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert load(state_dir="~/st").state_dir == tmp_path / "home" / "st"


def test_config_path_precedence(tmp_path: Path) -> None:
    flag_file = write(tmp_path, "concurrency = 3\n", "flag.toml")
    env_file = write(tmp_path, "concurrency = 4\n", "env.toml")
    default_file = write(tmp_path, "concurrency = 5\n", "default-config/config.toml")
    env = {**ENV, "MAVI_UPLOADER_CONFIG": str(env_file)}
    assert load(flag_file, env).config_file == flag_file
    assert load(flag_file, env).concurrency == 3
    assert load(None, env).concurrency == 4
    c = load(None, ENV)
    assert (c.config_file, c.concurrency) == (default_file, 5)


def test_relative_config_path_is_made_absolute(tmp_path: Path, isolate: Path) -> None:
    write(tmp_path, "concurrency = 7\n", "cwd/rel.toml")
    c = load_config(config_path="rel.toml", env=ENV)
    assert c.config_file == isolate / "rel.toml"
    assert c.config_file.is_absolute() and c.concurrency == 7


def test_api_key_precedence(tmp_path: Path) -> None:
    key_file = write(tmp_path, "  file-key\n\n", "secrets/key")
    key_file.chmod(0o600)
    path = write(tmp_path, f'api_key_file = "{key_file}"\n')
    assert load(path, {}).api_key == "file-key"  # stripped
    assert load(path, {"MAVI_API_KEY": " env-key \n"}).api_key == "env-key"
    assert load(path, {"MAVI_API_KEY": "  "}).api_key == "file-key"  # blank env = unset


def test_env_key_wins_without_reading_the_key_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'api_key_file = "does-not-exist"\n')
    assert load(path, ENV).api_key == KEY


# --- config file problems -----------------------------------------------------------------


def test_explicit_config_flag_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "x" / "y.toml"
    msg = error(missing)
    assert f"config file {missing} does not exist" in msg
    assert "drop --config" in msg


def test_explicit_config_env_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "y.toml"
    msg = error(None, {**ENV, "MAVI_UPLOADER_CONFIG": str(missing)})
    assert f"config file {missing} does not exist" in msg
    assert "unset MAVI_UPLOADER_CONFIG" in msg


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "concurrency = 2\nsettle_seconds = = 5\n")
    msg = error(path)
    assert str(path) in msg
    assert "line 2" in msg and "column" in msg


def test_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(b'api_base = "\xff\xfe"\n')
    msg = error(path)
    assert str(path) in msg and "UTF-8" in msg


# --- unknown keys -------------------------------------------------------------------------


def test_unknown_top_level_key_suggests_the_closest(tmp_path: Path) -> None:
    path = write(tmp_path, "concurency = 2\n")
    msg = error(path)
    assert str(path) in msg
    assert "unknown key concurency" in msg
    assert "did you mean concurrency?" in msg


def test_unknown_key_without_close_match_lists_valid_keys(tmp_path: Path) -> None:
    msg = error(write(tmp_path, "zzz = 1\n"))
    assert "unknown key zzz" in msg
    assert "settle_seconds" in msg and "did you mean" not in msg


def test_unknown_watch_key_suggests_the_closest(tmp_path: Path) -> None:
    path = write(tmp_path, '[[watch]]\npath = "/a"\nrecursiv = true\n')
    msg = error(path)
    assert str(path) in msg
    assert "unknown key recursiv in [[watch]] #1" in msg
    assert "did you mean recursive?" in msg


def test_top_level_key_written_after_a_watch_table(tmp_path: Path) -> None:
    msg = error(write(tmp_path, '[[watch]]\npath = "/a"\nconcurrency = 2\n'))
    assert "concurrency" in msg
    assert "move it above the first [[watch]]" in msg


def test_watch_key_at_top_level(tmp_path: Path) -> None:
    msg = error(write(tmp_path, 'path = "/a"\n'))
    assert "unknown key path" in msg
    assert "[[watch]]" in msg


def test_api_key_in_file_is_rejected_with_a_specific_message(tmp_path: Path) -> None:
    path = write(tmp_path, f'api_key = "{KEY}"\n')
    msg = error(path, {})
    assert str(path) in msg
    assert (
        "api_key is not a config key: put the key in a file and set api_key_file,"
        " or set MAVI_API_KEY"
    ) in msg
    assert KEY not in msg


def test_single_watch_table_must_be_an_array_of_tables(tmp_path: Path) -> None:
    path = write(tmp_path, '[watch]\npath = "/a"\n')
    msg = error(path)
    assert str(path) in msg and "[[watch]]" in msg


# --- wrong values: file, key, bad value and fix --------------------------------------------

BAD_VALUES = [
    ('concurrency = "two"', 'concurrency = "two"', "expected an integer from 1 to 32"),
    ("concurrency = true", "concurrency = true", "expected an integer from 1 to 32"),
    ("concurrency = 0", "concurrency = 0", "expected an integer from 1 to 32"),
    ("concurrency = 33", "concurrency = 33", "expected an integer from 1 to 32"),
    ("concurrency = 2.0", "concurrency = 2.0", "expected an integer from 1 to 32"),
    ("settle_seconds = -1", "settle_seconds = -1", ">= 0"),
    ('settle_seconds = "5"', 'settle_seconds = "5"', ">= 0"),
    ("settle_seconds = true", "settle_seconds = true", ">= 0"),
    ("settle_seconds = inf", "settle_seconds = Infinity", ">= 0"),
    ("rate_limit_per_second = -0.5", "rate_limit_per_second = -0.5", "0 = unlimited"),
    ("rate_limit_per_second = nan", "rate_limit_per_second = NaN", "0 = unlimited"),
    ("rescan_interval_seconds = -1", "rescan_interval_seconds = -1", "0 = off"),
    ('after_upload = "archive"', 'after_upload = "archive"', '"keep", "move" or "delete"'),
    ("dedupe = 1", "dedupe = 1", "true or false"),
    ('dedupe = "yes"', 'dedupe = "yes"', "true or false"),
    ('extensions = "mp4"', 'extensions = "mp4"', 'a list like ["mp4"]'),
    ("extensions = [1]", "extensions = [1]", 'a list like ["mp4"]'),
    ("extensions = []", "extensions = []", "a non-empty list"),
    ('extensions = ["."]', 'extensions = ["."]', "a non-empty list"),
    ('extensions = ["a/b"]', 'extensions = ["a/b"]', "a non-empty list"),
    ('bandwidth_limit = "fast"', 'bandwidth_limit = "fast"', '"20M"'),
    ("bandwidth_limit = -1", "bandwidth_limit = -1", '"20M"'),
    ("bandwidth_limit = 1.5", "bandwidth_limit = 1.5", '"20M"'),
    ("bandwidth_limit = true", "bandwidth_limit = true", '"20M"'),
    ('api_base = "ftp://example.com"', 'api_base = "ftp://example.com"', "https:// URL"),
    ('api_base = "not a url"', 'api_base = "not a url"', "https:// URL"),
    ('api_base = "https://"', 'api_base = "https://"', "https:// URL"),
    ("api_base = 5", "api_base = 5", "a string"),
    ("state_dir = 3", "state_dir = 3", "a string"),
    ("done_dir = false", "done_dir = false", "a string"),
    ("api_key_file = 7", "api_key_file = 7", "a string"),
    ("[[watch]]\npath = 3", "[[watch]] #1 path = 3", "a folder path string"),
    ('[[watch]]\npath = "/a"\nrecursive = "yes"', '[[watch]] #1 recursive = "yes"', "true or"),
    ('[[watch]]\npath = "/a"\npoll = 1', "[[watch]] #1 poll = 1", "true or false"),
    ('[[watch]]\npath = "/a"\npoll_interval_seconds = 0', "poll_interval_seconds = 0", "> 0"),
    ('[[watch]]\npath = "/a"\nignore = "*.tmp"', '[[watch]] #1 ignore = "*.tmp"', '["*.part"]'),
    ('[[watch]]\npath = "/a"\n[[watch]]\npath = "/b"\npoll = 0', "[[watch]] #2 poll = 0", "true"),
]  # fmt: skip


@pytest.mark.parametrize(("toml", "shown", "fix"), BAD_VALUES)
def test_bad_value_names_file_key_value_and_fix(
    tmp_path: Path, toml: str, shown: str, fix: str
) -> None:
    path = write(tmp_path, toml + "\n")
    msg = error(path)
    assert msg.startswith(f"{path}: ")
    assert f"{shown} is not valid: expected" in msg
    assert fix in msg


def test_watch_without_path(tmp_path: Path) -> None:
    path = write(tmp_path, "[[watch]]\nrecursive = true\n")
    msg = error(path)
    assert str(path) in msg and "[[watch]] #1 has no path" in msg and 'path = "' in msg


def test_watch_entries_that_are_not_tables(tmp_path: Path) -> None:
    for toml in ("watch = 3\n", 'watch = ["/a"]\n'):
        msg = error(write(tmp_path, toml))
        assert "[[watch]]" in msg


def test_bad_env_api_base_names_the_variable(tmp_path: Path) -> None:
    msg = error(None, {**ENV, "MAVI_API_BASE": "mavi.example.com"})
    assert 'MAVI_API_BASE (environment) = "mavi.example.com" is not valid' in msg
    assert DEFAULT_API_BASE in msg


def test_bad_flag_api_base_names_the_command_line() -> None:
    msg = error(None, ENV, api_base="ftp://x")
    assert "command line" in msg and '"ftp://x"' in msg


def test_bad_file_value_is_reported_even_when_overridden(tmp_path: Path) -> None:
    path = write(tmp_path, 'api_base = "ftp://x"\n')
    assert "api_base" in error(path, {**ENV, "MAVI_API_BASE": "https://ok.example"})


def test_file_watches_are_validated_even_when_flags_replace_them(tmp_path: Path) -> None:
    path = write(tmp_path, '[[watch]]\npath = "/a"\nrecursive = "no"\n')
    assert "recursive" in error(path, ENV, watch_dirs=["/b"])


# --- bandwidth ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0), (0, 0), (12345, 12345), ("12345", 12345),
        ("20M", 20_000_000), ("20m", 20_000_000), ("1.5G", 1_500_000_000),
        ("500k", 500_000), ("500K", 500_000), ("100KB", 100_000), ("100kb", 100_000),
        ("2MiB", 2 * 1024**2), ("2mib", 2 * 1024**2), ("1GiB", 1024**3), ("3KiB", 3072),
        ("1.5MiB", 1_572_864), ("4.35M", 4_350_000), (" 20 MB ", 20_000_000),
        ("4.1M", 4_100_000), ("8.2G", 8_200_000_000),
        ("10MB/s", 10_000_000), ("1T", 10**12), ("100B", 100), ("0M", 0),
    ],
)  # fmt: skip
def test_parse_bandwidth(text: str | int, expected: int) -> None:
    assert parse_bandwidth(text) == expected


@pytest.mark.parametrize(
    "text", ["", "fast", "-1", -1, "20X", "M", "1.2.3", "20 M B", "0.5", "1e6", "MiB", True]
)
def test_parse_bandwidth_rejects(text: str | int) -> None:
    with pytest.raises(ValueError, match="bandwidth") as info:
        parse_bandwidth(text)
    assert "0" in str(info.value)  # every message says how to write a valid value


def test_bandwidth_in_file_accepts_ints_and_strings(tmp_path: Path) -> None:
    assert load(write(tmp_path, "bandwidth_limit = 1000\n")).bandwidth_limit == steady(1000)
    assert load(write(tmp_path, 'bandwidth_limit = "2MiB"\n')).bandwidth_limit == steady(
        2 * 1024**2
    )


# --- done_dir -----------------------------------------------------------------------------


def test_move_requires_done_dir(tmp_path: Path) -> None:
    path = write(tmp_path, 'after_upload = "move"\n')
    msg = error(path)
    assert str(path) in msg and "done_dir" in msg and 'done_dir = "' in msg


def test_move_with_empty_done_dir_is_an_error(tmp_path: Path) -> None:
    assert "needs done_dir" in error(write(tmp_path, 'after_upload = "move"\ndone_dir = ""\n'))


def test_done_dir_relative_to_config_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'after_upload = "move"\ndone_dir = "done"\n[[watch]]\npath = "in"\n')
    c = load(path)
    assert c.after_upload is AfterUpload.MOVE
    assert c.done_dir == path.parent / "done"
    assert c.watches[0].path == path.parent / "in"


def test_done_dir_expands_tilde(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    c = load(write(tmp_path, 'after_upload = "move"\ndone_dir = "~/done"\n'))
    assert c.done_dir == tmp_path / "home" / "done"


@pytest.mark.parametrize("done", ["in", "in/done", "other/../in/done", "./in/./x/.."])
def test_done_dir_inside_or_equal_to_a_watch_is_an_error(tmp_path: Path, done: str) -> None:
    path = write(tmp_path, f'after_upload = "move"\ndone_dir = "{done}"\n[[watch]]\npath = "in"\n')
    msg = error(path)
    assert str(path) in msg
    assert "done_dir" in msg and str(path.parent / "in") in msg
    assert "outside every watch" in msg


def test_done_dir_inside_a_non_recursive_watch_is_still_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'after_upload = "move"\ndone_dir = "in/done"\n[[watch]]\npath = "in"\nrecursive = false\n',
    )
    assert "done_dir" in error(path)


@posix_only
def test_done_dir_symlinked_into_a_watch_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "conf" / "in" / "sub").mkdir(parents=True)
    (tmp_path / "conf" / "link").symlink_to(tmp_path / "conf" / "in" / "sub")
    path = write(tmp_path, 'after_upload = "move"\ndone_dir = "link"\n[[watch]]\npath = "in"\n')
    assert "inside the watched folder" in error(path)


def test_done_dir_inside_a_watch_flag_is_an_error(tmp_path: Path, isolate: Path) -> None:
    path = write(tmp_path, f'after_upload = "move"\ndone_dir = "{isolate / "w" / "done"}"\n')
    assert "inside the watched folder" in error(path, ENV, watch_dirs=["w"])


def test_done_dir_sibling_with_common_prefix_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path, 'after_upload = "move"\ndone_dir = "in-done"\n[[watch]]\npath = "in"\n')
    assert load(path).done_dir == path.parent / "in-done"


def test_done_dir_without_move_is_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, 'done_dir = "done"\n')
    c = load(path)
    assert c.after_upload is AfterUpload.KEEP
    assert len(c.warnings) == 1 and "done_dir" in c.warnings[0] and "move" in c.warnings[0]


# --- watches ------------------------------------------------------------------------------


def test_watch_paths_relative_to_config_file_and_tilde(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = write(tmp_path, '[[watch]]\npath = "rel/dir"\n[[watch]]\npath = "~/Videos"\n')
    assert [w.path for w in load(path).watches] == [
        path.parent / "rel" / "dir",
        tmp_path / "home" / "Videos",
    ]


def test_watch_flags_replace_file_watches_and_are_relative_to_cwd(
    tmp_path: Path, isolate: Path
) -> None:
    path = write(tmp_path, '[[watch]]\npath = "/from/file"\nrecursive = false\npoll = true\n')
    c = load(path, ENV, watch_dirs=["a", str(tmp_path / "b")])
    assert c.watches == (WatchConfig(isolate / "a"), WatchConfig(tmp_path / "b"))
    assert load(path, ENV, watch_dirs=()).watches[0].path == Path("/from/file")


def test_nested_recursive_watches_are_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, '[[watch]]\npath = "/v/in/sub"\n[[watch]]\npath = "/v/in"\n')
    msg = error(path)
    assert str(path) in msg
    assert "/v/in/sub" in msg and "/v/in," in msg and "recursive" in msg


def test_nested_watch_under_non_recursive_watch_is_fine(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[[watch]]\npath = "/v/in"\nrecursive = false\n[[watch]]\npath = "/v/in/sub"\n'
    )
    assert len(load(path).watches) == 2


def test_sibling_watches_with_common_prefix_are_fine(tmp_path: Path) -> None:
    path = write(tmp_path, '[[watch]]\npath = "/v/in"\n[[watch]]\npath = "/v/in2"\n')
    assert len(load(path).watches) == 2


@pytest.mark.parametrize("second", ["/v/in", "/v/in/", "/v/x/../in", "/v/./in"])
def test_duplicate_watches_are_an_error(tmp_path: Path, second: str) -> None:
    path = write(tmp_path, f'[[watch]]\npath = "/v/in"\n[[watch]]\npath = "{second}"\n')
    msg = error(path)
    assert str(path) in msg and "both watch" in msg


def test_overlapping_watch_flags_are_an_error() -> None:
    msg = error(None, ENV, watch_dirs=["/v", "/v/in"])
    assert "--watch /v/in is inside --watch /v" in msg


def test_duplicate_watch_flags_are_an_error() -> None:
    assert "both watch" in error(None, ENV, watch_dirs=["/v", "/v/"])


@posix_only
def test_watch_overlap_through_a_symlink_is_found(tmp_path: Path) -> None:
    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "alias").symlink_to(tmp_path / "real" / "sub")
    msg = error(None, ENV, watch_dirs=[str(tmp_path / "real"), str(tmp_path / "alias")])
    assert "recursive" in msg


def test_no_watches_is_allowed() -> None:
    assert load().watches == ()


# --- API key ------------------------------------------------------------------------------


def test_missing_key_error(tmp_path: Path) -> None:
    assert "set MAVI_API_KEY or api_key_file" in error(None, {})
    path = write(tmp_path, "concurrency = 2\n")
    msg = error(path, {"MAVI_API_KEY": ""})
    assert "set MAVI_API_KEY or api_key_file" in msg and str(path) in msg


def test_missing_key_is_fine_when_not_required() -> None:
    assert load(None, {}, require_api_key=False).api_key == ""


def test_key_file_relative_to_config_file(tmp_path: Path) -> None:
    (write(tmp_path, "k-rel\n", "conf/secrets/key")).chmod(0o600)
    assert load(write(tmp_path, 'api_key_file = "secrets/key"\n'), {}).api_key == "k-rel"


def test_missing_key_file_names_it(tmp_path: Path) -> None:
    path = write(tmp_path, 'api_key_file = "nope/key"\n')
    msg = error(path, {})
    assert str(path.parent / "nope" / "key") in msg and "cannot be read" in msg


def test_reports_do_not_need_a_readable_key_file(tmp_path: Path) -> None:
    """`status` by a person whose config names a key file only the service user reads."""
    path = write(tmp_path, 'api_key_file = "nope/key"\nconcurrency = 3\n')
    config = load(path, {}, require_api_key=False)
    assert config.api_key == "" and config.concurrency == 3


def test_empty_key_file_names_it(tmp_path: Path) -> None:
    key_file = write(tmp_path, " \n\n", "key")
    key_file.chmod(0o600)
    msg = error(write(tmp_path, f'api_key_file = "{key_file}"\n'), {})
    assert str(key_file) in msg and "is empty" in msg


def test_key_with_inner_whitespace_is_rejected_without_echoing_it(tmp_path: Path) -> None:
    msg = error(None, {"MAVI_API_KEY": "two words"})
    assert "MAVI_API_KEY" in msg and "two words" not in msg


@posix_only
def test_group_readable_key_file_is_a_warning(tmp_path: Path) -> None:
    key_file = write(tmp_path, KEY + "\n", "key")
    key_file.chmod(0o640)
    c = load(write(tmp_path, f'api_key_file = "{key_file}"\n'), {})
    assert c.api_key == KEY
    assert len(c.warnings) == 1
    assert str(key_file) in c.warnings[0] and f"chmod 600 {key_file}" in c.warnings[0]
    assert KEY not in c.warnings[0]


@posix_only
def test_private_key_file_gives_no_warning(tmp_path: Path) -> None:
    key_file = write(tmp_path, KEY, "key")
    key_file.chmod(0o600)
    assert load(write(tmp_path, f'api_key_file = "{key_file}"\n'), {}).warnings == ()


@posix_only
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_unreadable_key_file_names_it(tmp_path: Path) -> None:
    key_file = write(tmp_path, KEY, "key")
    key_file.chmod(0o000)
    msg = error(write(tmp_path, f'api_key_file = "{key_file}"\n'), {})
    assert str(key_file) in msg and "cannot be read" in msg


def test_key_never_in_repr(tmp_path: Path) -> None:
    c = load()
    assert c.api_key == KEY
    assert KEY not in repr(c) and KEY not in str(c)


def test_key_from_file_never_in_repr(tmp_path: Path) -> None:
    key_file = write(tmp_path, KEY, "key")
    key_file.chmod(0o600)
    c = load(write(tmp_path, f'api_key_file = "{key_file}"\n'), {})
    assert c.api_key == KEY and KEY not in repr(c)


BARE_KEY = KEY.replace("-", "_")  # also valid as a bare TOML key


@pytest.mark.parametrize(
    "toml",
    [
        f'api_base = "{BARE_KEY}"',
        f'state_dir = ["{BARE_KEY}"]',
        f'after_upload = "{BARE_KEY}"',
        f'bandwidth_limit = "{BARE_KEY}"',
        f'[[watch]]\npath = "/a"\nrecursive = "{BARE_KEY}"',
        f"{BARE_KEY} = 1",
    ],
)
def test_env_key_pasted_into_the_file_is_never_echoed(tmp_path: Path, toml: str) -> None:
    msg = error(write(tmp_path, toml + "\n"), {"MAVI_API_KEY": BARE_KEY})
    assert BARE_KEY not in msg
    assert "***" in msg


@pytest.mark.parametrize(
    "extra",
    [
        f'concurrency = "{KEY}"',
        f'after_upload = "move"\ndone_dir = "/{KEY}/done"\n[[watch]]\npath = "/{KEY}"',
    ],
)
def test_file_key_pasted_into_another_setting_is_never_echoed(tmp_path: Path, extra: str) -> None:
    key_file = write(tmp_path, KEY, "key")
    key_file.chmod(0o600)
    path = write(tmp_path, f'api_key_file = "{key_file}"\n{extra}\n')
    msg = error(path, {})
    assert KEY not in msg and "***" in msg


def test_api_base_from_env_strips_trailing_slashes() -> None:
    assert load(None, {**ENV, "MAVI_API_BASE": " https://h.example/api// "}).api_base == (
        "https://h.example/api"
    )
