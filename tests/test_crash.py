"""Crash harness: kill -9 the daemon 24 times mid-flight; nothing is lost, nothing corrupt."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from crash_harness import (
    CrashConfig,
    Figures,
    Kill,
    check_chains,
    check_extra_uploads,
    run_crash_harness,
)
from fakemavi import UploadRecord
from mavi_uploader.journal.sqlite.schema import connect, migrate


@pytest.mark.timeout(240)
def test_kill_9_at_random_and_chosen_moments_loses_and_corrupts_nothing(tmp_path: Path) -> None:
    cfg = CrashConfig(files=100, copies=5, kills=24, seed=20240611, concurrency=3)
    figures = run_crash_harness(cfg, tmp_path)
    print()
    print(figures.table())
    for problem in figures.problems:
        print("PROBLEM:", problem)

    assert figures.kills >= 20, figures.problems
    assert figures.lost == 0, figures.problems
    assert figures.corrupt == 0, figures.problems
    assert figures.stuck == 0, figures.problems
    assert figures.broken_chains == 0, figures.problems
    # A file is accepted twice only when a kill cut the daemon off after its bytes landed and
    # before it journaled them: every extra upload has a kill after the previous acceptance,
    # and one kill explains at most one per worker.
    assert figures.unexplained_extra == 0, figures.problems
    assert figures.max_extra_per_kill <= cfg.concurrency, figures.problems
    assert figures.extra_uploads <= figures.kills, figures.problems
    assert figures.done + figures.duplicate == figures.files == cfg.files + cfg.copies
    assert figures.final_exit == 0, figures.problems
    assert not figures.problems


# ---- the auditors themselves: a checker that never fails proves nothing ------------------


def _journal_rows(
    tmp_path: Path, files: list[tuple[int, str]], events: list[tuple[int, str | None, str]]
) -> tuple[list[sqlite3.Row], list[sqlite3.Row]]:
    db = tmp_path / "journal.sqlite3"
    conn = connect(db)
    migrate(conn, db)
    for file_id, state in files:
        conn.execute(
            "INSERT INTO files (id, path, state, created_at, updated_at) VALUES (?,?,?,0,0)",
            (file_id, f"/w/{file_id}.mp4".encode(), state),
        )
    for file_id, old, new in events:
        conn.execute(
            "INSERT INTO events (file_id, at, from_state, to_state) VALUES (?,0,?,?)",
            (file_id, old, new),
        )
    rows = conn.execute("SELECT * FROM files ORDER BY id").fetchall()
    evts = conn.execute("SELECT * FROM events ORDER BY id").fetchall()
    conn.close()
    return rows, evts


def test_chain_check_accepts_a_chain_and_names_each_kind_of_break(tmp_path: Path) -> None:
    files, events = _journal_rows(
        tmp_path,
        [(1, "done"), (2, "done"), (3, "queued"), (4, "done"), (5, "queued")],
        [
            (1, None, "settling"), (1, "settling", "queued"), (1, "queued", "uploading"),
            (1, "uploading", "confirming"), (1, "confirming", "done"),
            (2, None, "settling"), (2, "queued", "uploading"), (2, "uploading", "done"),
            (3, None, "settling"), (3, "settling", "queued"), (3, "queued", "uploading"),
            (4, "settling", "done"),
        ],
    )  # fmt: skip
    figures = Figures()
    check_chains(files, events, figures)
    assert figures.broken_chains == 4
    text = "\n".join(figures.problems)
    assert "(#2): event chain broken: event" in text  # a gap: settling, then queued->uploading
    assert "(#3): event chain broken: last event ends uploading, row is queued" in text
    assert "(#4): event chain broken: first event starts from settling" in text
    assert "(#5): event chain broken: no events" in text
    assert "(#1)" not in text


def _upload(name: str, at: float, asset: str = "re_1") -> UploadRecord:
    return UploadRecord(asset, name, 10, "0" * 64, None, "video/mp4", at)


def test_extra_upload_check_wants_a_kill_that_cut_that_upload_off() -> None:
    uploads = [
        _upload("a.mp4", 1.0), _upload("a.mp4", 3.0),  # cut off by the kill at 2.0
        _upload("b.mp4", 2.5), _upload("b.mp4", 3.5),  # landed after the kill at 2.0 cut it
        _upload("c.mp4", 5.0), _upload("c.mp4", 6.0),  # not in flight at any kill
        _upload("d.mp4", 1.0), _upload("d.mp4", 3.0), _upload("d.mp4", 4.5),  # 1 kill, 2 repeats
    ]  # fmt: skip
    cut = frozenset({("a.mp4", "re_1"), ("b.mp4", "re_1"), ("d.mp4", "re_1")})
    kills = [Kill(2.0, "storage_started", cut), Kill(4.0, "random")]
    figures = Figures()
    check_extra_uploads(uploads, kills, 2, figures)
    assert (figures.extra_uploads, figures.unexplained_extra) == (5, 2)
    assert figures.max_extra_per_kill == 3  # a, b and d, all cut off by the kill at 2.0
    assert (figures.extra_landed_before_kill, figures.extra_landed_after_kill) == (2, 1)
    assert any("c.mp4: accepted again" in p for p in figures.problems)
    assert any("d.mp4: accepted again" in p for p in figures.problems)
    assert any("more than concurrency=2 uploads" in p for p in figures.problems)
