"""redact() and the logging pipeline: no API key or signed-URL credential ever gets printed."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from mavi_uploader import log
from mavi_uploader.redaction import REDACTED, redact, register_secret, url_without_query

KEY = "redaction-test-api-key-93be1d7f"
SIGNATURE = "5a1e9c0ffee0b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6"
CREDENTIAL = "uploader%40proj.iam.gserviceaccount.com%2F20241125%2Fauto%2Fstorage%2Fgoog4_request"
BUCKET_PATH = "https://storage.googleapis.com/mavi-bucket/re_660736410386149376/video%20one.mp4"
SIGNED_URL = (
    f"{BUCKET_PATH}?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential={CREDENTIAL}"
    "&X-Goog-Date=20241125T000000Z&X-Goog-Expires=93600&X-Goog-SignedHeaders=host"
    f"&X-Goog-Signature={SIGNATURE}"
)
SECRETS = (KEY, SIGNATURE, CREDENTIAL)

register_secret(KEY)


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


# ---------------------------------------------------------------------------- redact()


def test_registered_secret_is_masked_everywhere() -> None:
    text = f"Authorization: {KEY} (again: '{KEY}')"
    assert redact(text) == f"Authorization: {REDACTED} (again: '{REDACTED}')"


def test_short_values_are_not_registered() -> None:
    register_secret("abc")
    register_secret("")
    assert redact("abc def abcabc") == "abc def abcabc"


def test_longer_overlapping_secret_wins() -> None:
    short, long = "overlap-secret", "overlap-secret-extended-42"
    register_secret(short)
    register_secret(long)
    assert redact(f"k={long}") == f"k={REDACTED}"
    assert "extended" not in redact(f"k={long}")


def test_signed_url_keeps_its_path_but_loses_its_query() -> None:
    out = redact(f"uploading to {SIGNED_URL} now")
    assert out == f"uploading to {BUCKET_PATH}?{REDACTED} now"
    assert_clean(out)


@pytest.mark.parametrize(
    "template",
    [
        "url='{}'",
        'url="{}"',
        "<{}>",
        "({})",
        "failed: {}\nnext line",
        "{}#fragment",
        "HTTPSConnectionPool: Max retries exceeded with url: {} (Caused by X)",
    ],
)
def test_signed_url_in_any_surrounding(template: str) -> None:
    out = redact(template.format(SIGNED_URL))
    assert_clean(out)
    assert BUCKET_PATH in out


def test_bare_signature_params_are_masked() -> None:
    # urllib3 logs the request line (path and query) without scheme or host.
    path = SIGNED_URL.removeprefix("https://storage.googleapis.com")
    line = f'"POST {path} HTTP/1.1" 403 None'
    out = redact(line)
    assert_clean(out)
    assert f"/mavi-bucket/re_660736410386149376/video%20one.mp4?{REDACTED} HTTP/1.1" in out


def test_a_path_query_with_any_parameter_names_is_masked() -> None:
    """urllib3's "Max retries exceeded with url: ..." for a signed URL of another kind."""
    out = redact("Max retries exceeded with url: /bucket/X?token=TOKSECRET&x=1 (Caused by")
    assert "TOKSECRET" not in out and f"/bucket/X?{REDACTED} (Caused by" in out


def test_file_names_with_a_question_mark_are_not_masked() -> None:
    assert redact("uploading /w/take 2?.mp4 and /w/what?.mov") == (
        "uploading /w/take 2?.mp4 and /w/what?.mov"
    )


@pytest.mark.parametrize(
    "param",
    ["X-Goog-Signature", "x-goog-signature", "X-Amz-Signature", "X-Amz-Credential", "Signature"],
)
def test_signature_params_any_vendor_and_case(param: str) -> None:
    out = redact(f"query {param}={SIGNATURE}&next=1")
    assert SIGNATURE not in out
    assert "next=1" in out


def test_redact_is_idempotent() -> None:
    # MaviError messages are redacted when built and again when logged.
    once = redact(f"{KEY} {SIGNED_URL}")
    assert redact(once) == once


def test_redacting_twice_stays_clean() -> None:
    twice = redact(redact(f"{KEY} {SIGNED_URL}"))
    assert_clean(twice)
    assert BUCKET_PATH in twice


def test_plain_text_is_left_alone() -> None:
    plain = "uploaded video.mp4 (3000000 bytes) as re_660736410386149376 in 2.5 s"
    assert redact(plain) == plain
    assert redact("") == ""


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("connect postgresql://mavi:pw@db:5432/j failed",
         f"connect postgresql://mavi:{REDACTED}@db:5432/j failed"),
        ("postgres://u:p%40ss@[::1]/j", f"postgres://u:{REDACTED}@[::1]/j"),
        ("postgresql://u:a@b@host/j", f"postgresql://u:{REDACTED}@host/j"),  # the last "@"
        ("postgresql://mavi@db:5432/j", "postgresql://mavi@db:5432/j"),  # no password
        ("https://api.example:8443/v2/x@y", "https://api.example:8443/v2/x@y"),  # a port
    ],
)  # fmt: skip
def test_url_passwords_are_masked_however_short(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_url_without_query() -> None:
    assert url_without_query(SIGNED_URL) == BUCKET_PATH
    assert url_without_query(f"{BUCKET_PATH}#frag") == BUCKET_PATH
    assert url_without_query(BUCKET_PATH) == BUCKET_PATH


# ----------------------------------------------------------------------------- logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put it back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    structlog_config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**structlog_config)


def boom_with_key() -> None:
    raise RuntimeError(f"request with key {KEY} to {SIGNED_URL} failed")


def emit_everything(stream: io.StringIO) -> str:
    logger = structlog.get_logger("test")
    logger.info(
        "x",
        url=SIGNED_URL,
        err=Exception(f"failed {SIGNED_URL}"),
        key=KEY,
        nested={"urls": [SIGNED_URL], "pair": (KEY, 1)},
    )
    logger.info(f"event text quoting {SIGNED_URL} and {KEY}")
    logging.getLogger("urllib3.connectionpool").warning(
        "Retrying (%r) after connection broken: %s", "Retry(total=0)", SIGNED_URL
    )
    logging.getLogger("urllib3").warning(f"direct message {KEY} {SIGNED_URL}")
    try:
        boom_with_key()
    except RuntimeError:
        logger.exception("upload crashed")
        logging.getLogger("watchdog").exception("stdlib crash")
    return stream.getvalue()


@pytest.mark.usefixtures("restore_logging")
def test_json_output_has_no_secrets() -> None:
    stream = io.StringIO()
    log.configure_logging("json", stream=stream)

    out = emit_everything(stream)

    assert_clean(out)
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 6
    first = records[0]
    assert first["event"] == "x"
    assert first["level"] == "info"
    assert first["url"] == f"{BUCKET_PATH}?{REDACTED}"
    assert first["key"] == REDACTED
    assert BUCKET_PATH in first["err"]
    assert first["nested"]["urls"] == [f"{BUCKET_PATH}?{REDACTED}"]
    assert first["nested"]["pair"] == [REDACTED, 1]
    assert BUCKET_PATH in records[2]["event"]  # stdlib urllib3 record, args interpolated
    assert records[2]["level"] == "warning"
    crash, stdlib_crash = records[4], records[5]
    assert crash["event"] == "upload crashed"
    assert "Traceback" in crash["exception"]
    assert "boom_with_key" in crash["exception"]
    assert REDACTED in crash["exception"]
    assert "boom_with_key" in stdlib_crash["exception"]
    assert REDACTED in stdlib_crash["exception"]


@pytest.mark.usefixtures("restore_logging")
def test_console_output_has_no_secrets() -> None:
    stream = io.StringIO()
    log.configure_logging("console", stream=stream)

    out = emit_everything(stream)

    assert_clean(out)
    assert "upload crashed" in out
    assert "boom_with_key" in out  # the traceback is still there, only redacted
    assert BUCKET_PATH in out
    assert "\x1b[" not in out  # no colours off a terminal


@pytest.mark.usefixtures("restore_logging")
def test_auto_format_off_a_terminal_is_json() -> None:
    stream = io.StringIO()
    log.configure_logging("auto", stream=stream)
    log.get_logger("t").info("hello", url=SIGNED_URL)
    record = json.loads(stream.getvalue())
    assert record["event"] == "hello"
    assert record["url"] == f"{BUCKET_PATH}?{REDACTED}"


@pytest.mark.usefixtures("restore_logging")
def test_levels_are_filtered() -> None:
    stream = io.StringIO()
    log.configure_logging("json", stream=stream, level=logging.WARNING)
    logger = log.get_logger("t")
    logger.info("quiet")
    logger.warning("loud")
    logging.getLogger("urllib3").info("stdlib info is below the root level")
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["loud"]


@pytest.mark.usefixtures("restore_logging")
def test_reconfiguring_does_not_duplicate_stdlib_output() -> None:
    log.configure_logging("json", stream=io.StringIO())
    stream = io.StringIO()
    log.configure_logging("json", stream=stream)
    logging.getLogger("urllib3").warning("once")
    assert len(stream.getvalue().splitlines()) == 1
