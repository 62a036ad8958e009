"""Signed URLs: reuse while a send can still start, and the refusals one send tolerates."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from mavi_uploader.core.records import FileRecord, State
from mavi_uploader.core.signed_urls import (
    MAX_EXPIRED_URLS,
    URL_START_MARGIN_SECONDS,
    UrlRejections,
    UrlVerdict,
    url_reusable,
)

NOW = 1_000_000.0
E, R = True, False  # storage rejected a URL as expired (E) or refused it otherwise (R)

# the rejections of one send, in order -> the verdict after the last one, its words
CASES = [
    ([E], UrlVerdict.SIGN_AGAIN, "no"),
    ([R], UrlVerdict.SIGN_AGAIN, "no"),
    ([E] * MAX_EXPIRED_URLS, UrlVerdict.SIGN_AGAIN, "no"),
    ([E] * (MAX_EXPIRED_URLS + 1), UrlVerdict.RETRY_LATER, f"({MAX_EXPIRED_URLS + 1} fresh URLs)"),
    ([R, E, E, E], UrlVerdict.RETRY_LATER, "no (4 fresh URLs)"),
    ([E, E, E, R], UrlVerdict.RETRY_LATER, "no (4 fresh URLs)"),
    ([R, R], UrlVerdict.FAIL, "no (after signing again)"),
    ([E, R, R], UrlVerdict.FAIL, "no (after signing again)"),
    ([R, E, E, R], UrlVerdict.FAIL, "no (after signing again)"),  # a refusal outranks the count
]  # fmt: skip


@pytest.mark.parametrize(("expired", "verdict", "words"), CASES)
def test_the_rejections_of_one_send(expired: list[bool], verdict: UrlVerdict, words: str) -> None:
    rejections = UrlRejections()
    for n, one in enumerate(expired, 1):
        before = rejections
        rejections = rejections.after(expired=one)
        assert before.total == n - 1  # a value: `after` makes a new one
        if n < len(expired):
            assert rejections.verdict is UrlVerdict.SIGN_AGAIN
    assert rejections.verdict is verdict
    assert rejections.explain("no").endswith(words)
    assert rejections.total == len(expired)
    assert rejections.refused == expired.count(R)


def row(**changes: Any) -> FileRecord:
    base = FileRecord(
        id=1, path="/w/a.mp4", watch_root="/w", state=State.UPLOADING, size=1, mtime_ns=1,
        stable_since=0.0, sha256=None, asset_id="re_1", signed_url="https://u",
        url_expires_at=NOW + 3600, duplicate_of=None, attempts=0, next_attempt_at=None,
        confirm_polls=0, last_error=None, lease_owner="w", lease_expires_at=None, bytes_sent=0,
        created_at=0.0, updated_at=0.0,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize(
    ("rec", "reusable"),
    [
        (row(), True),
        (row(url_expires_at=NOW + URL_START_MARGIN_SECONDS), True),
        (row(url_expires_at=NOW + URL_START_MARGIN_SECONDS - 1), False),  # a send may not start
        (row(url_expires_at=NOW - 5), False),
        (row(signed_url=None), False),
        (row(asset_id=None), False),
        (row(url_expires_at=None), False),
    ],
)
def test_a_journaled_url_is_reused_while_a_send_can_start(rec: FileRecord, reusable: bool) -> None:
    assert url_reusable(rec, NOW) is reusable
