"""The API key file: whatever bytes it holds, loading and `check` end in a key or a config error.

A key travels in an HTTP header, so only visible ASCII can pass; a UTF-8 BOM (Notepad) and
surrounding whitespace are dropped. The file is read through a small cap: a key file that is
really a 1 GB video, a FIFO or /dev/zero must not hang or fill memory.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import API_KEY, DaemonProcess, exit_code_within, sha256_of, write_video
from fakemavi import FakeMavi
from mavi_uploader.cli.checks import report, run_checks
from mavi_uploader.cli.main import main
from mavi_uploader.config import keyfile
from mavi_uploader.config.model import Config
from mavi_uploader.config.settings import ConfigError, load_config
from mavi_uploader.mavi.client import MaviClient

BOM = b"\xef\xbb\xbf"
VISIBLE = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
PADDING = st.text(alphabet=" \t\r\n", max_size=4)
# No example database in the working directory; no per-example deadline on a shared machine
# (a hang is caught by pytest-timeout, and the cap is tested on its own below).
QUIET: dict[str, Any] = {"database": None, "deadline": None}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    key_file = tmp_path / "api-key"
    config = tmp_path / "config.toml"
    config.write_text(f'api_key_file = "{key_file}"\nstate_dir = "{tmp_path / "state"}"\n')
    return {"key": key_file, "config": config}


def write_key(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def load(config: Path) -> Config:
    return load_config(config_path=str(config), env={})


def offline_client(config: Config) -> MaviClient:
    # Port 9 (discard) answers nothing: `check` reports the API as unreachable, quickly.
    return MaviClient("http://127.0.0.1:9/api", config.api_key, timeout=(0.5, 0.5))


def visible_ascii(key: str) -> bool:
    return bool(key) and all(0x21 <= ord(c) <= 0x7E for c in key)


# ---- properties over arbitrary key file contents --------------------------------------------


key_file_bytes = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=60).map(lambda t: t.encode("utf-8")),
    st.tuples(st.sampled_from([b"", BOM]), st.text(max_size=40)).map(
        lambda p: p[0] + p[1].encode("utf-8")
    ),
    st.tuples(st.sampled_from([b"", BOM]), st.binary(max_size=40)).map(lambda p: p[0] + p[1]),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], **QUIET)
@given(data=key_file_bytes)
def test_any_key_file_gives_a_usable_key_or_a_config_error_naming_it(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    tmp = tmp_path_factory.mktemp("key")
    config = tmp / "config.toml"
    config.write_text(f'api_key_file = "{tmp / "key"}"\nstate_dir = "{tmp / "state"}"\n')
    write_key(tmp / "key", data)
    try:
        key = load(config).api_key
    except ConfigError as exc:
        assert str(tmp / "key") in str(exc)
    else:
        # Only a key an HTTP header can carry gets through, and it is the file's own text.
        assert visible_ascii(key) and key.encode() in data
    # `check` prints a report for every content: no exception escapes it.
    text = report(run_checks(lambda: load(config), make_client=offline_client))
    assert "FAIL" in text  # the API is offline in this test, at the least


@settings(max_examples=200, **QUIET)
@given(
    bom=st.sampled_from([b"", BOM]),
    before=PADDING,
    key=st.text(alphabet=VISIBLE, min_size=1, max_size=100),
    after=PADDING,
)
def test_a_key_with_a_bom_and_blank_padding_is_read_exactly(
    tmp_path_factory: pytest.TempPathFactory, bom: bytes, before: str, key: str, after: str
) -> None:
    tmp = tmp_path_factory.mktemp("key")
    config = tmp / "config.toml"
    config.write_text(f'api_key_file = "{tmp / "key"}"\n')
    write_key(tmp / "key", bom + (before + key + after).encode())
    assert load(config).api_key == key


@settings(max_examples=100, **QUIET)
@given(
    head=st.text(alphabet=VISIBLE, max_size=10),
    bad=st.characters(blacklist_categories=["Cs"]).filter(lambda c: not 0x21 <= ord(c) <= 0x7E),
    tail=st.text(alphabet=VISIBLE, max_size=10),
)
def test_a_character_a_header_cannot_carry_is_refused_without_echoing_the_key(
    tmp_path_factory: pytest.TempPathFactory, head: str, bad: str, tail: str
) -> None:
    key = head + bad + tail
    if not key.strip().removeprefix("\ufeff").strip():
        return  # only blanks: the "empty" case, covered below
    if visible_ascii(key.strip().removeprefix("\ufeff").strip()):
        return  # the odd character was surrounding whitespace or the BOM, which are dropped
    tmp = tmp_path_factory.mktemp("key")
    config = tmp / "config.toml"
    config.write_text(f'api_key_file = "{tmp / "key"}"\n')
    write_key(tmp / "key", key.encode("utf-8"))
    with pytest.raises(ConfigError) as info:
        load(config)
    assert str(tmp / "key") in str(info.value)


@settings(**QUIET)
@given(text=st.text(max_size=60))
def test_the_environment_key_is_checked_like_a_file(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    config = tmp_path_factory.mktemp("env") / "config.toml"
    config.write_text("concurrency = 1\n")
    try:
        key = load_config(config_path=str(config), env={"MAVI_API_KEY": text}).api_key
    except ConfigError as exc:
        assert "MAVI_API_KEY" in str(exc)
    else:
        assert visible_ascii(key)


# ---- sizes, odd files -----------------------------------------------------------------------


@contextlib.contextmanager
def counting_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The bytes each os.read returned (only the key file is read that way)."""
    got: list[int] = []
    real = os.read

    def read(fd: int, n: int) -> bytes:
        data = real(fd, n)
        got.append(len(data))
        return data

    monkeypatch.setattr(os, "read", read)  # keyfile reads with os.read: no hidden buffer
    yield got


def test_a_huge_key_file_is_refused_after_a_few_kilobytes(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    with open(files["key"], "wb") as f:
        f.write(API_KEY.encode())
        f.truncate(1 << 30)  # sparse: 1 GB on paper, nothing on disk
    files["key"].chmod(0o600)
    started = time.monotonic()
    with counting_reads(monkeypatch) as reads, pytest.raises(ConfigError) as info:
        load(files["config"])
    assert time.monotonic() - started < 5
    assert sum(reads) <= 8192
    assert str(files["key"]) in str(info.value) and "larger than" in str(info.value)


def test_a_key_file_at_the_cap_is_still_read(files: dict[str, Path]) -> None:
    padding = keyfile.MAX_KEY_FILE_BYTES - len(API_KEY)
    write_key(files["key"], API_KEY.encode() + b"\n" * padding)
    assert load(files["config"]).api_key == API_KEY


@pytest.mark.timeout(20)
def test_a_fifo_or_a_device_is_refused_without_waiting(files: dict[str, Path]) -> None:
    os.mkfifo(files["key"])  # nobody writes to it: a blocking open would wait for ever
    with pytest.raises(ConfigError) as info:
        load(files["config"])
    assert str(files["key"]) in str(info.value) and "not a regular file" in str(info.value)
    files["config"].write_text('api_key_file = "/dev/zero"\n')
    with pytest.raises(ConfigError) as info:
        load(files["config"])
    assert "/dev/zero" in str(info.value)


def test_a_folder_is_refused(files: dict[str, Path]) -> None:
    files["key"].mkdir()
    with pytest.raises(ConfigError) as info:
        load(files["config"])
    assert str(files["key"]) in str(info.value)


def test_utf16_is_refused_with_a_fix(files: dict[str, Path]) -> None:
    write_key(files["key"], API_KEY.encode("utf-16"))  # what "Unicode" in Notepad saves
    with pytest.raises(ConfigError) as info:
        load(files["config"])
    assert str(files["key"]) in str(info.value) and "UTF-8" in str(info.value)


# ---- the commands ---------------------------------------------------------------------------


@pytest.fixture
def cli_env(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, fake: FakeMavi) -> Path:
    watch = files["config"].parent / "watch"
    watch.mkdir()
    files["config"].write_text(files["config"].read_text() + f'[[watch]]\npath = "{watch}"\n')
    monkeypatch.delenv("MAVI_API_KEY", raising=False)
    monkeypatch.delenv("MAVI_UPLOADER_STATE_DIR", raising=False)
    monkeypatch.setenv("MAVI_UPLOADER_CONFIG", str(files["config"]))
    monkeypatch.setenv("MAVI_API_BASE", fake.api_base)
    return files["key"]


def test_check_accepts_a_key_file_with_a_bom(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_key(cli_env, BOM + API_KEY.encode() + b"\r\n")
    code = main(["check"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "answers and accepts the key" in out


def test_check_refuses_a_key_with_a_non_ascii_character_inside(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_key(cli_env, (API_KEY[:8] + "é" + API_KEY[8:]).encode())
    code = main(["check"])
    out = capsys.readouterr().out
    assert code == 2, out
    assert str(cli_env) in out and "Traceback" not in out
    assert API_KEY[8:] not in out  # the key is never echoed


def key_file_daemon(tmp_path: Path, fake: FakeMavi, data: bytes) -> DaemonProcess:
    key_file = tmp_path / "api-key"
    write_key(key_file, data)
    watch = tmp_path / "watch"
    watch.mkdir()
    daemon = DaemonProcess(tmp_path, fake, watch, api_key_file=str(key_file))
    del daemon.env["MAVI_API_KEY"]
    return daemon


def test_run_once_uploads_with_a_bom_key_file(tmp_path: Path, fake: FakeMavi) -> None:
    daemon = key_file_daemon(tmp_path, fake, BOM + API_KEY.encode() + b"\n")
    clip = write_video(daemon.watch / "a.mp4", 4000)
    try:
        assert exit_code_within(daemon.start("--once"), 60) == 0, daemon.log_text()
    finally:
        daemon.close()
    assert fake.received_sha256s() == [sha256_of(clip)]


def test_run_refuses_a_key_with_a_non_ascii_character_inside(
    tmp_path: Path, fake: FakeMavi
) -> None:
    daemon = key_file_daemon(tmp_path, fake, (API_KEY[:5] + "é" + API_KEY[5:]).encode())
    write_video(daemon.watch / "a.mp4", 4000)
    for args in (("run", "--once"), ("run",)):
        result = daemon.cli(*args, timeout=30)
        assert result.returncode == 2, (args, result.stderr)
        assert str(tmp_path / "api-key") in result.stderr
        assert "Traceback" not in result.stderr + result.stdout
    assert fake.calls == []


def test_no_command_prints_a_traceback_for_a_bad_key_file(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_key(cli_env, BOM + "ключ-0123".encode())  # nothing latin-1 could carry either
    for argv in (["check"], ["status"], ["list"], ["enqueue", str(cli_env)]):
        code = main(argv)  # an exception escaping main() is the traceback a person would see
        out = capsys.readouterr()
        assert code in (0, 1, 2), argv
        assert "Traceback" not in out.out + out.err
