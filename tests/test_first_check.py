"""The first check after an upload waits a delay learned per size class (core/first_check)."""

from __future__ import annotations

import pytest

from mavi_uploader.core.first_check import MAX_DELAY, MIB, SHRINK, FirstChecks, size_class


@pytest.mark.parametrize(
    ("size", "cls"),
    [(None, 0), (0, 0), (16 * MIB - 1, 0), (16 * MIB, 1), (256 * MIB, 2), (5 * 1024 * MIB, 3)],
)
def test_size_classes(size: int | None, cls: int) -> None:
    assert size_class(size) == cls


def test_a_class_never_seen_starts_from_the_initial_delay_doubled_per_class() -> None:
    checks = FirstChecks(initial=3.0)
    assert [checks.delay(s) for s in (1, 20 * MIB, 300 * MIB, 8192 * MIB)] == [3, 6, 12, 24]


def test_an_early_first_check_teaches_the_time_success_was_seen_with_a_margin() -> None:
    checks = FirstChecks(initial=3.0)
    checks.observe(1000, 5.0, first_check=False)
    assert checks.delay(1000) == pytest.approx(5.5)
    assert checks.delay(20 * MIB) == 6.0  # other classes learn on their own


def test_a_first_check_that_found_success_shrinks_the_delay_a_little() -> None:
    checks = FirstChecks(initial=4.0)
    checks.observe(1000, 4.0, first_check=True)
    assert checks.delay(1000) == pytest.approx(4.0 * SHRINK)


def test_the_delay_settles_just_above_mavis_time_with_few_early_checks() -> None:
    # MAVI takes 3 s; a poll that finds it not ready is followed 1 s later.
    checks, early = FirstChecks(initial=1.0), 0
    for _ in range(200):
        wait = checks.delay(1000)
        if wait >= 3.0:
            checks.observe(1000, wait, first_check=True)
        else:
            early += 1
            checks.observe(1000, wait + 1.0, first_check=False)
    assert 2.5 <= checks.delay(1000) <= 4.5  # just around MAVI's 3 s, never far above
    assert early / 200 < 0.15  # at most ~1 wasted call in 7 files


def test_the_delay_stays_within_its_floor_and_cap() -> None:
    checks = FirstChecks(initial=1.0, floor=0.5)
    for _ in range(100):
        checks.observe(1000, 0.1, first_check=True)
    assert checks.delay(1000) == 0.5
    checks.observe(1000, 1e6, first_check=False)
    assert checks.delay(1000) == MAX_DELAY
