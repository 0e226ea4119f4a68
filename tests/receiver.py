"""A real HTTP webhook receiver on a loopback port, scripted per path.

Paths choose behaviour: /ok, /flaky/<n> (503 n times, then 200), /gone (410),
/slow (sleeps past the sender's timeout), /redirect (302 to /ok),
/throttle (429 with Retry-After: 1 once, then 200).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    _calls: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def to(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    def respond(self, path: str) -> tuple[int, dict[str, str]]:
        with self._lock:
            self._calls[path] += 1
            calls = self._calls[path]
        if path.startswith("/flaky/"):
            return (503, {}) if calls <= int(path.rsplit("/", 1)[1]) else (200, {})
        if path == "/gone":
            return 410, {}
        if path == "/slow":
            time.sleep(2.5)
            return 200, {}
        if path == "/redirect":
            return 302, {"location": "/ok"}
        if path == "/throttle":
            return (429, {"retry-after": "1"}) if calls == 1 else (200, {})
        return 200, {}


@contextmanager
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            status, headers = state.respond(self.path)
            with state._lock:
                state.requests.append(
                    Received(self.path, dict(self.headers.items()), body, time.time(), status)
                )
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()
            except OSError:
                pass  # the sender gave up waiting (the slow path)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
