"""`check`: each problem is found and printed with its fix; exit 0 only when all is well."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import API_KEY
from fakemavi import FakeMavi, Fault
from mavi_uploader.cli.checks import report, run_checks
from mavi_uploader.cli.main import main
from mavi_uploader.config.model import Config
from mavi_uploader.config.settings import load_config
from mavi_uploader.journal import Fleet, open_journal
from mavi_uploader.mavi.client import MaviClient


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeMavi) -> Path:
    watch = tmp_path / "watch"
    watch.mkdir()
    (watch / "sub").mkdir()
    config = tmp_path / "config.toml"
    config.write_text(f'[[watch]]\npath = "{watch}"\n')
    monkeypatch.setenv("MAVI_UPLOADER_CONFIG", str(config))
    monkeypatch.setenv("MAVI_UPLOADER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MAVI_API_KEY", API_KEY)
    monkeypatch.setenv("MAVI_API_BASE", fake.api_base)
    return config


def check(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["check"])
    return code, capsys.readouterr().out


def test_all_good_exits_0(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = check(capsys)
    assert code == 0, out
    assert "FAIL" not in out and out.rstrip().endswith("all good")
    assert "answers and accepts the key" in out


def test_missing_watch_folder_is_a_config_error_with_its_fix(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env.write_text(f'[[watch]]\npath = "{tmp_path / "nowhere"}"\n')
    code, out = check(capsys)
    assert code == 2  # DESIGN: 2 = config error; `run` only warns (the folder may appear)
    assert f"FAIL  watch folder {tmp_path / 'nowhere'} does not exist" in out
    assert f"fix: create it, or change {env}: [[watch]] #1 path" in out


def test_a_watch_path_that_is_a_file_is_a_config_error(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"x")
    env.write_text(f'[[watch]]\npath = "{clip}"\n')
    code, out = check(capsys)
    assert code == 2
    assert f"FAIL  watch folder {clip} is a file, not a folder" in out
    assert f"fix: set {env}: [[watch]] #1 path to a folder" in out


def test_no_watch_folders_is_a_config_error(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env.write_text("concurrency = 1\n")
    code, out = check(capsys)
    assert code == 2
    assert "FAIL  no watch folders" in out and f"add a [[watch]] table to {env}" in out


def test_an_unwritable_state_dir_is_a_config_error(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    # Under a regular file: not writable for anyone, root included.
    monkeypatch.setenv("MAVI_UPLOADER_STATE_DIR", str(blocker / "state"))
    code, out = check(capsys)
    assert code == 2
    assert f"FAIL  state dir {blocker / 'state'} is not writable" in out


def test_rejected_key(env: Path, fake: FakeMavi, capsys: pytest.CaptureFixture[str]) -> None:
    fake.set_api_key("another-key-entirely")
    code, out = check(capsys)
    assert code == 1 and "rejected the key" in out and API_KEY not in out


def test_unreachable_api(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MAVI_API_BASE", "http://127.0.0.1:9/serve/api/v2")  # discard port
    code, out = check(capsys)
    assert code == 1 and "unreachable" in out and "MAVI_API_BASE" in out


def test_missing_key(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MAVI_API_KEY")
    code, out = check(capsys)
    assert code == 2 and "set MAVI_API_KEY or api_key_file" in out  # a config error, as for run


def test_a_broken_config_exits_2_like_every_command(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env.write_text('api_key = "abc"\n' + env.read_text())
    code, out = check(capsys)
    assert code == 2 and "api_key" in out and "FAIL" in out


def test_too_many_folders_for_inotify(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    limit = tmp_path / "max_user_watches"
    limit.write_text("2\n")
    findings = run_checks(load_config, inotify_limit_file=limit)
    text = report(findings)
    assert "2 folders to watch but fs.inotify.max_user_watches is 2" in text
    assert "sudo sysctl -w fs.inotify.max_user_watches=" in text


def test_an_api_that_keeps_rate_limiting_is_reported_not_waited_on_forever(
    env: Path, fake: FakeMavi
) -> None:
    fake.inject("metadata", Fault("rate_limit_429"), times=1000)

    def impatient(config: Config) -> MaviClient:
        return MaviClient(config.api_base, config.api_key, rate_limit_patience=1.0)

    text = report(run_checks(load_config, make_client=impatient))
    assert "keeps answering 'rate limited'" in text and "FAIL" in text


# ---- fleet mode: the fleet's journal is checked too -------------------------------------


def test_fleet_mode_checks_the_journal_and_says_who_is_in_the_fleet(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    monkeypatch.setenv("MAVI_UPLOADER_JOURNAL_URL", pg_url)
    monkeypatch.setenv("MAVI_UPLOADER_HOST_ID", "bay-1")
    code, out = check(capsys)
    assert code == 0, out
    assert "the fleet's journal database answers (no daemon has used it yet)" in out
    journal = open_journal(env.parent / "state", fleet=Fleet(url=pg_url, host_id="bay-2"))
    journal.heartbeat(4242)
    journal.close()
    code, out = check(capsys)
    assert code == 0, out
    assert "1 hosts known, 1 alive; this host is 'bay-1'" in out


def test_fleet_mode_with_a_database_that_does_not_exist_is_a_config_error(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    monkeypatch.setenv("MAVI_UPLOADER_JOURNAL_URL", pg_url.rsplit("/", 1)[0] + "/nosuchdb")
    code, out = check(capsys)
    assert code == 2, out
    assert "journal_url" in out and "nosuchdb" in out and "fix journal_url" in out
