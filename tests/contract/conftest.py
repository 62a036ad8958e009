"""The `store` fixture: every test of the contract runs once per store in STORES.

A store joins the suite by adding its name to STORES and a branch to `_open` (a PostgreSQL
store would skip itself when no server is configured).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Clock
from contract.helpers import Opener
from mavi_uploader.journal import JournalStore, open_for_reports, open_journal

STORES = ["sqlite"]


def _open(kind: str, where: Path, clock: Clock) -> JournalStore:
    if kind == "sqlite":
        return open_journal(where / "state", clock=clock)
    raise AssertionError(f"unknown store {kind!r}")


def _open_reader(kind: str, where: Path) -> JournalStore:
    if kind == "sqlite":
        reader = open_for_reports(where / "state")
        assert reader is not None
        return reader
    raise AssertionError(f"unknown store {kind!r}")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def open_store(store_kind: str, tmp_path: Path, clock: Clock) -> Iterator[Opener]:
    """Opens one more connection to the same journal (as another process would)."""
    opened: list[JournalStore] = []

    def open_one() -> JournalStore:
        opened.append(_open(store_kind, tmp_path, clock))
        return opened[-1]

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def open_reader(store_kind: str, tmp_path: Path) -> Iterator[Opener]:
    """Opens the read-only view the reports (`status`, `list`, `history`) use."""
    opened: list[JournalStore] = []

    def open_one() -> JournalStore:
        opened.append(_open_reader(store_kind, tmp_path))
        return opened[-1]

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Opener) -> JournalStore:
    return open_store()
