"""The command line in-process: exit codes, JSON shapes, messages, redaction."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import API_KEY, wait_for, write_video
from containers import mp4
from journal_paths import drive
from mavi_uploader.cli import waiting
from mavi_uploader.cli.main import main
from mavi_uploader.core.records import FileRecord, Observation, State
from mavi_uploader.journal.sqlite.store import Journal
from mavi_uploader.service.lock import StateDirLock

STATES = [
    "settling", "queued", "uploading", "confirming", "done", "duplicate", "failed",
    "vanished", "skipped",
]  # fmt: skip


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    watch = tmp_path / "watch"
    watch.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(f'[[watch]]\npath = "{watch}"\n')
    for var in ("MAVI_API_KEY", "MAVI_API_BASE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MAVI_UPLOADER_CONFIG", str(config))
    monkeypatch.setenv("MAVI_UPLOADER_STATE_DIR", str(tmp_path / "state"))
    return {"watch": watch, "state": tmp_path / "state", "config": config}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def journal_with(setup: dict[str, Path], state: State, name: str = "a.mp4", **fields: Any) -> int:
    path = write_video(setup["watch"] / name, 1000)
    journal = Journal.open(setup["state"])
    (rec,) = journal.sight([Observation(str(path), str(setup["watch"]), 1000, 1)])
    drive(journal, rec.id, state, **fields)
    journal.close()
    return rec.id


def test_status_json_without_any_journal(setup: dict[str, Path], capsys: Any) -> None:
    code, out, _ = run(capsys, "status", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc == {
        "state_dir": str(setup["state"]),
        "journal": "sqlite",  # no "hosts": a fleet's only
        "daemon": {"running": False, "pid": None},
        "paused": None,
        "counts": dict.fromkeys(STATES, 0),
        "uploads": [],
        "confirming": [],
        "settling": [],
        "recent_errors": [],
        "handoffs": {"owed": 0, "failing": 0, "recent": []},
        "bandwidth": {"limit": "off", "bytes_per_second": None, "until": None},
    }


def test_status_shows_the_bandwidth_limit_in_force_and_when_it_changes(
    setup: dict[str, Path], capsys: Any
) -> None:
    now = datetime.now().replace(second=0, microsecond=0)
    change = now + timedelta(hours=2)  # every day: in force from this minute for two hours
    table = f"{now:%H:%M},2M {change:%H:%M},pause"
    setup["config"].write_text(f'bandwidth_limit = "{table}"\n' + setup["config"].read_text())
    doc = json.loads(run(capsys, "status", "--json")[1])
    until = change.astimezone().isoformat(timespec="seconds")
    assert doc["bandwidth"] == {"limit": "2M", "bytes_per_second": 2_000_000, "until": until}
    assert f"bandwidth  2M (2.0 MB/s), until {until}\n" in run(capsys, "status")[1]

    table = f"{now:%H:%M},pause {change:%H:%M},off"
    setup["config"].write_text(f'bandwidth_limit = "{table}"\n[[watch]]\npath = "/w"\n')
    doc = json.loads(run(capsys, "status", "--json")[1])
    assert doc["bandwidth"] == {"limit": "pause", "bytes_per_second": None, "until": until}
    text = run(capsys, "status")[1]
    assert f"bandwidth  pause: no new upload starts, until {until}\n" in text


def test_status_shows_counts_and_pause(setup: dict[str, Path], capsys: Any) -> None:
    journal_with(setup, State.DONE)
    journal = Journal.open(setup["state"])
    journal.set_pause("402 Payment Required: the MAVI account balance is exhausted; top it up")
    journal.close()
    doc = json.loads(run(capsys, "status", "--json")[1])
    assert doc["counts"]["done"] == 1
    assert doc["journal"] == "sqlite" and "hosts" not in doc
    assert doc["paused"]["reason"].startswith("402")
    assert doc["paused"]["since"].endswith("+00:00")
    code, text, _ = run(capsys, "status")
    assert code == 0 and "402 Payment Required" in text and "not running" in text
    assert "journal    sqlite" in text and "hosts:" not in text


def test_status_and_list_say_why_a_settling_file_is_not_queued(
    setup: dict[str, Path], capsys: Any
) -> None:
    writer = "held open for writing by pid 7 (ffmpeg)"
    held = journal_with(setup, State.SETTLING, last_error=writer)
    cut = journal_with(
        setup, State.SETTLING, name="b.mov", last_error="incomplete: MP4 has no moov box yet"
    )
    journal_with(setup, State.SETTLING, name="c.mp4")  # merely settling: nothing to say
    doc = json.loads(run(capsys, "status", "--json")[1])
    assert [(s["id"], s["waiting_for"]) for s in doc["settling"]] == [
        (held, writer),
        (cut, "incomplete: MP4 has no moov box yet"),
    ]
    text = run(capsys, "status")[1]
    assert f"not queued yet:\n#{held} " in text and text.count(writer) == 1  # not an error
    assert "recent errors" not in text
    listed = run(capsys, "list", "--state", "settling")[1]
    assert writer in listed and "incomplete: MP4 has no moov box yet" in listed


def test_list_and_history(setup: dict[str, Path], capsys: Any) -> None:
    done = journal_with(setup, State.DONE, asset_id="re_1")
    failed = journal_with(setup, State.FAILED, name="b.mp4", last_error="415 unsupported")
    code, out, _ = run(capsys, "list", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["id"] for r in rows] == [failed, done]
    for key in ("id", "path", "state", "size", "sha256", "asset_id", "attempts", "last_error",
                "updated_at"):  # fmt: skip
        assert key in rows[0]
    assert (rows[0]["host_id"], rows[0]["share"]) == (None, None)  # fleet mode's, null here
    only_failed = json.loads(run(capsys, "list", "--json", "--state", "failed")[1])
    assert [r["id"] for r in only_failed] == [failed]
    assert "415 unsupported" in run(capsys, "list")[1]

    code, out, _ = run(capsys, "history", str(setup["watch"] / "a.mp4"), "--json")
    assert code == 0
    (entry,) = json.loads(out)
    assert [e["to"] for e in entry["events"]] == [
        "settling", "queued", "uploading", "confirming", "done",
    ]  # fmt: skip
    assert {e["host_id"] for e in entry["events"]} == {None}
    code, out, _ = run(capsys, "history", str(failed))
    assert code == 0 and "uploading -> failed" in out
    assert "HOST" not in out and "HOST" not in run(capsys, "list")[1]  # a fleet's column
    code, _, err = run(capsys, "history", "/nowhere.mp4")
    assert code == 1 and "no file" in err


def test_enqueue_checks_the_rules(setup: dict[str, Path], capsys: Any, tmp_path: Path) -> None:
    good = write_video(setup["watch"] / "clip.mp4", 100)
    code, out, _ = run(capsys, "enqueue", str(good))
    assert code == 0 and out.startswith("queued #")
    outside = write_video(tmp_path / "elsewhere.mp4", 100)
    text = setup["watch"] / "notes.txt"
    text.write_text("x")
    code, _, err = run(capsys, "enqueue", str(outside), str(text), str(setup["watch"] / "no.mp4"))
    assert code == 1
    assert "outside every watch folder" in err
    assert "extension 'txt' is not in the configured extensions" in err, err
    assert "No such file" in err
    journal = Journal.open(setup["state"])
    assert journal.counts()["queued"] == 1 and journal.counts()["skipped"] == 2
    journal.close()


def test_enqueue_wait_prints_each_state_once(
    setup: dict[str, Path], capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = write_video(setup["watch"] / "clip.mp4", 100)
    setup["state"].mkdir(mode=0o700)
    lock = StateDirLock(setup["state"])  # stands in for the daemon `--wait` needs
    lock.acquire()
    config = setup["config"]
    config.write_text("[timers]\nwait_poll = 0.01\n" + config.read_text())  # hidden setting
    polls: list[list[State]] = []  # the states each poll of `--wait` read
    real_current = waiting._current

    def current(journal: Journal, ids: Sequence[int]) -> list[FileRecord]:
        records = real_current(journal, ids)
        polls.append([r.state for r in records])
        return records

    monkeypatch.setattr(waiting, "_current", current)
    journal = Journal.open(setup["state"])

    def upload() -> None:  # the "daemon": done once `enqueue` has queued the file
        rec = wait_for(lambda: journal.in_states([State.QUEUED]), what="queued")[0]
        queued = [State.QUEUED]
        wait_for(lambda: polls.count(queued) >= 3, what="several polls of --wait seeing it queued")
        with journal.batch():  # uploaded and confirmed at once: --wait sees only done
            drive(journal, rec.id, State.DONE, asset_id="re_1")

    worker = threading.Thread(target=upload)
    worker.start()
    try:
        code, out, _ = run(capsys, "enqueue", "--wait", str(clip))
    finally:
        worker.join(timeout=30)
        journal.close()
        lock.release()
    assert code == 0
    assert out.splitlines() == [f"queued #1 {clip}", f"done #1 {clip}"]


def test_retry_moves_failed_back_to_queued(setup: dict[str, Path], capsys: Any) -> None:
    failed = journal_with(setup, State.FAILED, attempts=10, last_error="boom")
    done = journal_with(setup, State.DONE, name="b.mp4")
    code, out, err = run(capsys, "retry", str(failed), str(done))
    assert code == 1
    assert f"queued #{failed}" in out and f"#{done} is done" in err
    journal = Journal.open(setup["state"])
    rec = journal.get(failed)
    assert rec is not None and rec.state is State.QUEUED and rec.attempts == 0
    journal.close()
    assert run(capsys, "retry")[0] == 2
    journal_with(setup, State.FAILED, name="c.mp4")
    code, out, _ = run(capsys, "retry", "--all-failed")
    assert code == 0 and out.count("queued #") == 1


def test_config_errors_exit_2_and_name_the_key(setup: dict[str, Path], capsys: Any) -> None:
    setup["config"].write_text("concurency = 2\n")
    code, _, err = run(capsys, "status")
    assert code == 2
    assert str(setup["config"]) in err and "concurency" in err and "concurrency" in err


def test_run_without_a_watch_folder_exits_2(
    setup: dict[str, Path], capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup["config"].write_text("settle_seconds = 1\n")
    monkeypatch.setenv("MAVI_API_KEY", API_KEY)
    code, _, err = run(capsys, "run", "--once")
    assert code == 2 and "no watch folders" in err and "--watch" in err


def test_run_refuses_a_watch_path_that_is_a_file(
    setup: dict[str, Path], capsys: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clip = write_video(tmp_path / "clip.mp4", 100)
    setup["config"].write_text(f'[[watch]]\npath = "{clip}"\n')
    monkeypatch.setenv("MAVI_API_KEY", API_KEY)
    code, _, err = run(capsys, "run", "--once")
    assert code == 2
    assert f'{setup["config"]}: [[watch]] #1 path "{clip}" is a file, not a folder' in err
    assert "enqueue" in err  # the fix: a folder here, or `enqueue` for one file
    # The daemon proper refuses too, at once (it would otherwise wait for the "folder").
    env = {**os.environ, "MAVI_API_KEY": API_KEY}
    result = subprocess.run(
        [sys.executable, "-m", "mavi_uploader", "run"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "is a file, not a folder" in result.stderr
    code, _, err = run(capsys, "run", "--once", "--watch", str(clip))
    assert code == 2 and f'--watch "{clip}" is a file, not a folder' in err


def test_run_once_only_warns_about_a_missing_watch_folder(
    setup: dict[str, Path], capsys: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    setup["config"].write_text(f'[[watch]]\npath = "{tmp_path / "not-yet"}"\n')
    monkeypatch.setenv("MAVI_API_KEY", API_KEY)
    code, out, err = run(capsys, "run", "--once", "--log-format", "json")
    assert code == 0  # it may be mounted or created later: a warning, not an error
    assert "does not exist (yet)" in out + err


def test_reports_never_show_the_key_or_a_signed_url(
    setup: dict[str, Path], capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAVI_API_KEY", API_KEY)
    leak = f"storage upload to https://storage.example/b/o?X-Goog-Signature=abc123 key {API_KEY}"
    file_id = journal_with(setup, State.FAILED, last_error=leak)
    outputs = [
        run(capsys, "list")[1], run(capsys, "list", "--json")[1],
        run(capsys, "history", str(file_id))[1], run(capsys, "history", str(file_id), "--json")[1],
    ]  # fmt: skip
    for out in outputs:
        assert "storage.example/b/o" in out
        assert "abc123" not in out and API_KEY not in out


def test_install_service_dry_run_writes_nothing(
    setup: dict[str, Path], capsys: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    code, out, _ = run(capsys, "install-service", "--dry-run", "--config", str(setup["config"]))
    assert code == 0
    assert "--- would write " in out and "[Service]" in out and "Type=notify" in out
    assert not any(home.rglob("*.service")) and not any(home.rglob("*.plist"))
    code, out, _ = run(capsys, "uninstall-service", "--dry-run")
    assert code == 0 and "would remove" in out


def test_enqueue_wait_redacts_a_failed_files_error(setup: dict[str, Path]) -> None:
    url = "https://storage.test/b/re_1/a.mp4?X-Goog-Signature=cafe0123deadbeef"
    file_id = journal_with(setup, State.FAILED, last_error=f"storage: HTTP 403 at {url}")
    journal = Journal.open(setup["state"])
    out = io.StringIO()
    try:
        assert waiting.follow(journal, [file_id], out=out, poll=0.01) is False
    finally:
        journal.close()
    assert "storage: HTTP 403 at https://storage.test/b/re_1/a.mp4" in out.getvalue()
    assert "cafe0123deadbeef" not in out.getvalue()


def test_list_limit_must_be_a_positive_integer(setup: dict[str, Path], capsys: Any) -> None:
    for bad in ("-1", "0", "ten"):
        with pytest.raises(SystemExit) as exit_info:
            main(["list", "--limit", bad])
        assert exit_info.value.code == 2
        assert f"--limit: must be a positive integer, not '{bad}'" in capsys.readouterr().err
    assert run(capsys, "list", "--limit", "1")[0] == 0


@pytest.mark.parametrize(
    "args",
    [("list", "--json", "--limit", "100000"), ("history", "1", "--json"), ("status",)],
    ids=["list-large-output", "history", "status-small-output"],
)
def test_a_report_whose_reader_went_away_ends_quietly(
    setup: dict[str, Path], args: tuple[str, ...]
) -> None:
    """`mavi-uploader history 1 --json | head -c 10` printed a BrokenPipeError traceback."""
    journal = Journal.open(setup["state"])
    journal.sight(
        Observation(str(setup["watch"] / f"clip{n:04d}.mp4"), str(setup["watch"]), 1000, 1)
        for n in range(2000)
    )  # a `list --json` of ~700 KB: the pipe breaks in the middle of printing
    journal.close()
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the command writes a byte
    try:
        result = subprocess.run(
            [sys.executable, "-m", "mavi_uploader", *args],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert result.stderr == ""  # no traceback, no "Exception ignored"
    assert result.returncode == 1  # a runtime failure (contract exit codes: 0 1 2 3)


def test_enqueue_leaves_an_incomplete_container_to_settle_unless_no_verify(
    setup: dict[str, Path], capsys: Any
) -> None:
    whole = mp4()
    cut = setup["watch"] / "camera.mp4"
    cut.write_bytes(whole[: whole.index(b"moov") - 4])  # ftyp + mdat: the moov is still owed
    code, out, err = run(capsys, "enqueue", str(cut))
    assert code == 1 and out == ""
    assert "incomplete: MP4 has no moov box yet" in err and "--no-verify" in err
    journal = Journal.open(setup["state"])
    (row,) = journal.by_path(str(cut))
    assert row.state is State.SETTLING  # the settle tick has it: it waits, then the grace
    journal.close()
    code, out, _ = run(capsys, "enqueue", "--no-verify", str(cut))
    assert code == 0 and out.startswith(f"queued #{row.id} ")
    finished = setup["watch"] / "export.mp4"
    finished.write_bytes(whole)
    code, out, _ = run(capsys, "enqueue", str(finished))
    assert code == 0 and out.startswith("queued #")
