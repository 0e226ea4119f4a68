"""Retries: a submit whose answer is lost is sent again with the same Idempotency-Key.

A real TCP proxy stands between the client and a real gateway. It passes every
request on, but for the first ones it drops the answer on the floor (closes the
client's connection after the gateway has replied): the job exists, the client
does not know it. The client must end up with that job, and only one.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

import shoal.client
from shoal import keys
from shoal.client import Client
from shoal.local.ports import free_port
from tests.conftest import Live


def _read_request(connection: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += connection.recv(65536)
    # One request per upstream connection, so the answer ends where the upstream closes.
    head = b"\r\n".join(
        line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")
    )
    return head + b"\r\nConnection: close\r\n\r\n" + body


@contextmanager
def lossy_proxy(upstream_port: int, drop_first: int) -> Iterator[tuple[str, list[bytes]]]:
    """http://127.0.0.1:<port>: forwards each request; loses the first answers."""
    seen: list[bytes] = []
    lock = threading.Lock()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            request = _read_request(self.request)
            if not request:
                return
            with lock:
                seen.append(request)
                drop = len(seen) <= drop_first
            with socket.create_connection(("127.0.0.1", upstream_port)) as upstream:
                upstream.sendall(request)
                answer = b""
                while chunk := upstream.recv(65536):
                    answer += chunk
            if not drop:
                self.request.sendall(answer)
            # Dropped: the gateway did the work, the client hears a closed connection.

    server = socketserver.ThreadingTCPServer(("127.0.0.1", free_port()), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_a_lost_answer_is_retried_into_the_same_single_job(live: Live) -> None:
    before = len(live.redis.keys(keys.job("*")))
    with (
        lossy_proxy(_port(live.url), drop_first=2) as (url, seen),
        Client(url, backoff=0.05) as client,
    ):
        job = client.submit("Only once, please.", metadata={"try": "lossy"})
    assert len(seen) == 3  # two answers lost, the third heard
    keys_sent = {line for request in seen for line in request.split(b"\r\n")}
    idempotency = [line for line in keys_sent if line.lower().startswith(b"idempotency-key:")]
    assert len(idempotency) == 1  # one key on every try
    assert len(live.redis.keys(keys.job("*"))) == before + 1  # one job, not three
    assert live.redis.exists(keys.job(job.id))


def test_a_call_that_is_not_repeatable_is_not_resent(live: Live) -> None:
    with (
        lossy_proxy(_port(live.url), drop_first=1) as (url, seen),
        Client(url, backoff=0.05) as client,
        pytest.raises(shoal.client.ConnectionFailed),
    ):
        client.create_voice(b"not audio at all", "text")
    assert len(seen) == 1  # a voice upload might have been stored: never sent twice


def test_a_gateway_that_is_not_there_fails_after_its_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with (
        Client(url, max_retries=2, backoff=0.01) as client,
        pytest.raises(shoal.client.ConnectionFailed) as raised,
    ):
        client.get("job_x")
    assert url in str(raised.value)


def test_which_answers_are_tried_again() -> None:
    policy = shoal.client.RetryPolicy(max_retries=3, backoff=0.1)
    calls = shoal.client._calls.Calls()
    submit, upload = calls.submit("Hi"), calls.create_voice(b"x", "t", None)

    def after(
        call: object, status: int, headers: dict[str, str] | None = None, attempt: int = 0
    ) -> float | None:
        return policy.after_response(call, httpx.Response(status, headers=headers), attempt)  # type: ignore[arg-type]

    assert after(submit, 503, {"retry-after": "2"}) == 2.0  # the gateway's hint wins
    assert after(upload, 429, {"retry-after": "1"}) == 1.0  # refused: safe for any call
    assert 0 < (after(submit, 502) or 0) <= 0.1  # a proxy lost it: a submit may go again
    assert after(upload, 502) is None  # an upload may not
    assert after(submit, 504, {"x-should-retry": "false"}) is None
    assert after(submit, 422) is None and after(submit, 500) is None
    assert after(submit, 503, attempt=3) is None  # out of retries
