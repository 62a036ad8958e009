"""sd_notify on real Unix datagram sockets: the unit, and the daemon talking to "systemd"."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable, Iterator

import pytest

from conftest import DaemonProcess, wait_for
from mavi_uploader.service.notify import Notifier

DaemonFactory = Callable[..., DaemonProcess]


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, str]]:
    # Unix socket paths must stay under ~108 bytes: pytest's tmp_path can be longer.
    folder = tempfile.mkdtemp(prefix="notify-")
    path = os.path.join(folder, "s")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    yield sock, path
    sock.close()
    shutil.rmtree(folder)


def received(sock: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except (TimeoutError, BlockingIOError):
            return messages


def test_messages_reach_a_path_socket(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.ready("3 done")
    assert notifier.watchdog() and notifier.stopping()
    ready, ping, stopping = received(sock)
    assert ready.splitlines()[:2] == ["READY=1", "STATUS=3 done"]
    assert f"MAINPID={os.getpid()}" in ready
    assert ping == "WATCHDOG=1"
    assert stopping.startswith("STOPPING=1")


def test_abstract_socket_address() -> None:
    name = f"mavi-notify-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(2)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).status("hello")
        assert sock.recv(100) == b"STATUS=hello"


def test_without_a_service_manager_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and notifier.ready("x") is False
    assert notifier.watchdog_interval is None


def test_watchdog_interval_is_half_of_watchdogsec_for_our_pid() -> None:
    ours = Notifier({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())})
    assert ours.watchdog_interval == 30.0
    assert Notifier({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}).watchdog_interval is None


def test_daemon_reports_ready_status_watchdog_and_stopping(
    daemon_factory: DaemonFactory, listener: tuple[socket.socket, str]
) -> None:
    sock, path = listener
    daemon = daemon_factory()
    daemon.env["NOTIFY_SOCKET"] = path
    daemon.start()
    seen: list[str] = []

    def got(prefix: str) -> bool:
        seen.extend(received(sock))
        return any(m.startswith(prefix) for m in seen)

    wait_for(lambda: got("READY=1"), what="READY=1")
    ready = next(m for m in seen if m.startswith("READY=1"))
    assert "STATUS=no files yet" in ready
    assert daemon.proc is not None and f"MAINPID={daemon.proc.pid}" in ready
    wait_for(lambda: got("WATCHDOG=1"), what="WATCHDOG=1")
    daemon.kill(signal.SIGTERM)
    wait_for(lambda: got("STOPPING=1"), what="STOPPING=1")
