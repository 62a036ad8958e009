"""`upload_order`: the config key, its way to the workers' claims, and SIGHUP changing it.

What each order claims is the journal contract's (tests/contract/test_claim_order.py); the
daemon sending in that order, tests/test_e2e_order.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import API_KEY, wait_for
from fakemavi import FakeMavi
from mavi_uploader.config.model import Config, UploadOrder
from mavi_uploader.config.settings import ConfigError, load_config
from mavi_uploader.core.records import State
from mavi_uploader.service.daemon import Daemon
from mavi_uploader.service.parts import worker_settings
from rig import Rig, make_rig


@pytest.fixture
def rig(tmp_path: Path, fake: FakeMavi) -> Iterator[Rig]:
    yield from make_rig(tmp_path, fake)


def config_with(tmp_path: Path, line: str = "", api_base: str = "http://127.0.0.1:9") -> Config:
    config_file = tmp_path / "config.toml"
    watch = tmp_path / "watch"
    watch.mkdir(exist_ok=True)
    config_file.write_text(f'{line}\n[[watch]]\npath = "{watch}"\n')
    env = {"MAVI_API_KEY": API_KEY, "MAVI_API_BASE": api_base,
           "MAVI_UPLOADER_STATE_DIR": str(tmp_path / "state")}  # fmt: skip
    return load_config(config_path=str(config_file), env=env)


def test_the_default_is_fifo(tmp_path: Path) -> None:
    assert config_with(tmp_path).upload_order is UploadOrder.FIFO


@pytest.mark.parametrize("order", ["fifo", "newest", "smallest"])
def test_each_order_is_read(tmp_path: Path, order: str) -> None:
    config = config_with(tmp_path, f'upload_order = "{order}"')
    assert config.upload_order is UploadOrder(order)
    assert worker_settings(config).order is UploadOrder(order)  # what each claim is given


@pytest.mark.parametrize("value", ['"largest"', '"Smallest"', '""', "1", '["fifo"]'])
def test_anything_else_names_the_file_the_key_and_the_orders(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_with(tmp_path, f"upload_order = {value}")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'config.toml'}: upload_order = ")
    assert message.endswith('is not valid: expected "fifo", "newest" or "smallest"')


def test_a_near_miss_of_the_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="upload_order"):
        config_with(tmp_path, 'uploads_order = "smallest"')


def test_a_worker_claims_in_the_order_of_its_settings(rig: Rig) -> None:
    large = rig.queue("large.mp4", 90_000, seed=1)
    small = rig.queue("small.mp4", 10_000, seed=2)
    worker = rig.worker(order=UploadOrder.SMALLEST)
    assert worker.run_once()
    assert rig.get(small).state is State.DONE and rig.get(large).state is State.QUEUED
    assert [u.size for u in rig.fake.completed] == [10_000]


def test_sighup_changes_the_order_of_the_next_claims(tmp_path: Path, fake: FakeMavi) -> None:
    """The order travels in the workers' settings, which a reload replaces (as dedupe and
    after_upload): a worker's next claim uses the new one, its file in flight is left be."""
    configs = {"next": config_with(tmp_path, 'upload_order = "newest"', fake.api_base)}
    daemon = Daemon(configs["next"], reload_config=lambda: configs["next"])
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()

    def orders() -> set[UploadOrder]:
        return {worker.settings.order for worker in list(daemon._workers.values())}

    try:
        wait_for(lambda: orders() == {UploadOrder.NEWEST}, what="workers claiming newest first")
        configs["next"] = config_with(tmp_path, 'upload_order = "smallest"', fake.api_base)
        daemon.signals.hup_requested = True  # what SIGHUP sets
        wait_for(lambda: orders() == {UploadOrder.SMALLEST}, what="smallest after the reload")
        assert len(daemon._workers) == 3  # concurrency 2, and the confirmer
    finally:
        daemon.stop.set()
        runner.join(timeout=30)
    assert not runner.is_alive()
