"""A fast HTTP sink on 127.0.0.1: reads every request body in 1 MiB chunks and discards it.

    .venv/bin/python bench/sink.py [--port 0]

prints one JSON line {"url": ..., "port": ...} and serves until SIGTERM/SIGINT. Any POST or
PUT is answered 200 with {"received": N}, N the body bytes read (Content-Length or chunked);
`Expect: 100-continue` (curl -F sends it) is honoured. bench/upload_cpu.py uses the same sink
for mavi-uploader's client and for curl, in a process of its own so its CPU is not counted.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

CHUNK = 1024 * 1024


class SinkHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and 100-continue for curl
    server_version = "bench-sink/1"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _read_fixed(self, view: memoryview, length: int) -> int:
        remaining = length
        while remaining > 0:
            n = self.rfile.readinto(view[: min(len(view), remaining)])
            if not n:
                raise ConnectionError(f"body ended {remaining} bytes early")
            remaining -= n
        return length

    def _read_chunked(self, view: memoryview) -> int:
        total = 0
        while True:
            size = int(self.rfile.readline(1024).split(b";", 1)[0].strip(), 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return total
            total += self._read_fixed(view, size)
            self.rfile.readline(3)

    def do_POST(self) -> None:
        view = memoryview(bytearray(CHUNK))
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            received = self._read_chunked(view)
        else:
            received = self._read_fixed(view, int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"received": received}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_PUT = do_POST


class Sink(ThreadingHTTPServer):
    daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/upload"


def start_sink(port: int = 0) -> tuple[Sink, threading.Thread]:
    """An in-process sink on a thread (callers stop it with `sink.shutdown()`)."""
    sink = Sink(("127.0.0.1", port), SinkHandler)
    thread = threading.Thread(target=sink.serve_forever, daemon=True)
    thread.start()
    return sink, thread


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    sink, thread = start_sink(args.port)
    done = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(json.dumps({"url": sink.url, "port": sink.server_address[1]}), flush=True)
    while not done.wait(0.5):
        pass
    sink.shutdown()
    sink.server_close()
    thread.join(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
