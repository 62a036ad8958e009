"""Review: the fleet's server unreachable (a network partition, not a restart) wedges the
daemon's calls: no call gives up within Fleet.wait, as docs/ARCHITECTURE.md says every call
does ("while the server is away every call raises JournalError within Fleet.wait").

A TCP proxy between the journal and PostgreSQL stops relaying (packets dropped, as when a
switch or VPN goes down); nothing closes the sockets.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from mavi_uploader.journal import Fleet, JournalError, open_journal


class Blackhole:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.cut = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut.is_set():
                self.socks.append(client)  # never answered
                continue
            server = socket.create_connection(self.target)
            self.socks += [client, server]
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                return
            while self.cut.is_set():
                time.sleep(0.05)  # the partition: bytes go nowhere
            with contextlib.suppress(OSError):
                dst.sendall(data)

    def close(self) -> None:
        self.listener.close()
        for s in self.socks:
            with contextlib.suppress(OSError):
                s.close()


def test_a_call_during_a_partition_gives_up_within_fleet_wait(tmp_path: Path, pg_url: str) -> None:
    parts = urlsplit(pg_url)
    hole = Blackhole(parts.hostname or "127.0.0.1", parts.port or 5432)
    url = f"postgresql://{parts.username}@127.0.0.1:{hole.port}{parts.path}"
    journal = open_journal(tmp_path / "a", fleet=Fleet(url, "a", {}, wait=2.0))
    outcome: list[object] = []
    try:
        journal.counts()
        hole.cut.set()

        def call() -> None:
            try:
                outcome.append(journal.counts())
            except JournalError as exc:
                outcome.append(exc)

        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        caller.join(timeout=20.0)
        assert not caller.is_alive(), (
            "journal.counts() still waiting 20 s into a partition (wait=2)"
        )
        assert isinstance(outcome[0], JournalError)
    finally:
        hole.cut.clear()
        hole.close()
        journal.close()
