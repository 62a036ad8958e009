"""MAVI's silence (mavi/silence.py), which ends `run --once`: a hanging request counts from
when it was sent, not from when its read timeout fires."""

from __future__ import annotations

import threading
import time

import pytest

from mavi_uploader.mavi.client import MaviClient, TransientError
from mavi_uploader.mavi.ratelimit import Stopped
from mavi_uploader.mavi.silence import Silence
from silent_server import silent_server


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_request_waiting_for_its_answer_counts_from_when_it_was_sent(clock: Clock) -> None:
    silence = Silence(clock)
    assert silence.seconds() == 0.0
    ticket = silence.sent("api")
    clock.now += 50
    assert silence.seconds() == 50  # still hanging: no timeout needed for the clock to run
    silence.answered(ticket)
    assert silence.seconds() == 0.0


def test_a_timed_out_request_keeps_the_host_silent_since_it_was_sent(clock: Clock) -> None:
    silence = Silence(clock)
    ticket = silence.sent("api")
    clock.now += 120
    silence.unanswered(ticket)  # its read timeout fired
    clock.now += 5
    assert silence.seconds() == 125
    later = silence.sent("api")
    clock.now += 1
    assert silence.seconds() == 126  # a new request does not restart the clock
    silence.answered(later)
    assert silence.seconds() == 0.0


def test_an_answer_restarts_the_clock_of_the_requests_still_waiting(clock: Clock) -> None:
    silence = Silence(clock)
    old = silence.sent("api")
    clock.now += 30
    silence.answered(silence.sent("api"))
    clock.now += 10
    assert silence.seconds() == 10  # `old` waits since the last answer, not since it was sent
    silence.dropped(old)
    assert silence.seconds() == 0.0


def test_the_least_reachable_host_counts(clock: Clock) -> None:
    silence = Silence(clock)
    silence.sent("storage")
    clock.now += 20
    api = silence.sent("api")
    clock.now += 5
    silence.answered(api)
    assert silence.seconds() == 25


def test_bytes_moving_are_not_silence(clock: Clock) -> None:
    silence = Silence(clock)
    upload = silence.sent("storage")
    for _ in range(10):
        clock.now += 60
        silence.moving(upload)  # storage took another chunk
    clock.now += 7
    assert silence.seconds() == 7


def test_a_request_failed_for_our_own_reason_is_forgotten(clock: Clock) -> None:
    silence = Silence(clock)
    ticket = silence.sent("storage")
    clock.now += 30
    silence.dropped(ticket)  # a disk error mid-body, a stopping daemon
    assert silence.seconds() == 0.0


def test_the_client_counts_a_request_hanging_on_a_silent_server() -> None:
    """Through the real client and socket: the clock runs long before the read timeout."""
    with silent_server() as base:
        client = MaviClient(f"{base}/serve/api/v2", "k" * 20, timeout=(60.0, 60.0))
        errors: list[BaseException] = []

        def sign() -> None:
            try:
                client.sign("a.mp4")
            except (Stopped, TransientError) as exc:
                errors.append(exc)

        thread = threading.Thread(target=sign, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while client.unreachable_for() < 1.0:
            assert time.monotonic() < deadline, "the hanging request was never counted"
            time.sleep(0.05)
        client.abort_requests()  # the daemon stops: the request is cut, and forgotten
        thread.join(timeout=10)
        assert not thread.is_alive() and isinstance(errors[0], Stopped)
        assert client.unreachable_for() == 0.0


def test_the_client_counts_a_refused_connection() -> None:
    client = MaviClient("http://127.0.0.1:9/serve/api/v2", "k" * 20)
    with pytest.raises(TransientError):
        client.sign("a.mp4")
    deadline = time.monotonic() + 10
    while client.unreachable_for() <= 0.0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
