"""The `store` fixture: every test of the contract runs once per store in STORES.

A store joins the suite by adding its name to STORES and a branch to `_open`. The PostgreSQL
store runs on a throwaway cluster (tests/pgcluster.py): it skips, saying why, where the server
binaries are missing, and fails instead under MAVI_REQUIRE_POSTGRES=1 (CI).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Clock
from contract.helpers import Opener
from mavi_uploader.journal import Fleet, JournalStore, open_for_reports, open_journal

STORES = ["sqlite", "postgresql"]
HOST = "host-a"


def _fleet(request: pytest.FixtureRequest, where: Path) -> Fleet:
    """A fleet of one host whose own folder is everything (the contract's paths are /w/...)."""
    url: str = request.getfixturevalue("pg_url")
    return Fleet(url=url, host_id=HOST, host_timeout=30.0)


def _open(kind: str, where: Path, clock: Clock, fleet: Fleet | None) -> JournalStore:
    if kind == "sqlite":
        return open_journal(where / "state", clock=clock)
    if kind == "postgresql":
        return open_journal(where / "state", fleet=fleet, clock=clock)
    raise AssertionError(f"unknown store {kind!r}")


def _open_reader(kind: str, where: Path, fleet: Fleet | None) -> JournalStore:
    reader = open_for_reports(where / "state", fleet if kind == "postgresql" else None)
    assert reader is not None
    return reader


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def fleet(store_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Fleet | None:
    return _fleet(request, tmp_path) if store_kind == "postgresql" else None


@pytest.fixture
def open_store(
    store_kind: str, tmp_path: Path, clock: Clock, fleet: Fleet | None
) -> Iterator[Opener]:
    """Opens one more connection to the same journal (as another process would)."""
    opened: list[JournalStore] = []

    def open_one() -> JournalStore:
        opened.append(_open(store_kind, tmp_path, clock, fleet))
        return opened[-1]

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def open_reader(store_kind: str, tmp_path: Path, fleet: Fleet | None) -> Iterator[Opener]:
    """Opens the read-only view the reports (`status`, `list`, `history`) use."""
    opened: list[JournalStore] = []

    def open_one() -> JournalStore:
        opened.append(_open_reader(store_kind, tmp_path, fleet))
        return opened[-1]

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Opener) -> JournalStore:
    return open_store()
