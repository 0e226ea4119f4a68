"""Admission control at the gateway, on real processes: what is refused, how, and that
nothing is written when it is.

Queue cap and memory pressure answer 503 with Retry-After and a stable code;
the per-key rate limit and queued cap answer 429; a Redis that is stopped or
gone answers 503 within its timeouts; `Prefer: wait` holds a bounded number
of requests. No worker runs, so jobs stay queued where a test counts them.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from shoal import keys
from shoal.local.ports import free_port
from shoal.local.processes import ProcessSpec, spawn, stop
from shoal.local.redis_server import RedisServer
from shoal.local.s3_server import SeaweedS3
from tests.conftest import FAST
from tests.support import Env, gateway

KEY_A, KEY_B = "key-a-0123456789abcdef", "key-b-0123456789abcdef"


def jobs_written(client: redis.Redis) -> int:
    return len(list(client.scan_iter(keys.job("*"))))


def assert_refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code and problem["detail"]
    return problem


def _client(env: Env) -> redis.Redis:
    return redis.Redis.from_url(env.values["SHOAL_REDIS_URL"], decode_responses=True)


def test_the_rate_limit_is_per_key_with_ratelimit_headers(env: Env) -> None:
    env = env.with_(SHOAL_RATE_LIMIT_PER_MINUTE="3", SHOAL_API_KEYS=f"{KEY_A},{KEY_B}")
    client = _client(env)
    with gateway(env) as url:
        a = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY_A}"})
        b = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY_B}"})
        remaining = []
        for _ in range(3):
            accepted = a.post("/v1/jobs", json={"text": "Counted."})
            assert accepted.status_code == 202
            assert accepted.headers["ratelimit-limit"] == "3"
            assert accepted.headers["ratelimit-policy"] == "3;w=60"
            remaining.append(int(accepted.headers["ratelimit-remaining"]))
        assert remaining == [2, 1, 0]
        before = jobs_written(client)
        refused = a.post("/v1/jobs", json={"text": "One too many."})
        problem = assert_refused(refused, 429, "rate_limited")
        assert "3 jobs a minute" in problem["detail"]
        assert refused.headers["ratelimit-remaining"] == "0"
        assert 1 <= int(refused.headers["ratelimit-reset"]) <= 60
        assert jobs_written(client) == before  # nothing written
        assert b.post("/v1/jobs", json={"text": "Another key."}).status_code == 202
    client.close()


def test_the_queue_cap_is_a_503_and_nothing_is_written(env: Env) -> None:
    env = env.with_(SHOAL_MAX_QUEUED="3")
    client = _client(env)
    with gateway(env) as url, httpx.Client(base_url=url) as http:
        for _ in range(3):
            assert http.post("/v1/jobs", json={"text": "Waiting."}).status_code == 202
        before = (jobs_written(client), client.llen(keys.TTS_QUEUE))
        assert_refused(http.post("/v1/jobs", json={"text": "Full."}), 503, "queue_full")
        assert (jobs_written(client), client.llen(keys.TTS_QUEUE)) == before
    client.close()


def test_the_per_key_queued_cap_is_a_429(env: Env) -> None:
    env = env.with_(SHOAL_MAX_QUEUED_PER_KEY="2", SHOAL_API_KEYS=f"{KEY_A},{KEY_B}")
    client = _client(env)
    with gateway(env) as url:
        a = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY_A}"})
        b = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY_B}"})
        for _ in range(2):
            assert a.post("/v1/jobs", json={"text": "Mine."}).status_code == 202
        before = jobs_written(client)
        assert_refused(a.post("/v1/jobs", json={"text": "Third."}), 429, "too_many_queued")
        assert jobs_written(client) == before
        assert b.post("/v1/jobs", json={"text": "Theirs."}).status_code == 202
    client.close()


def test_prefer_wait_holds_a_bounded_number_of_requests(env: Env) -> None:
    env = env.with_(SHOAL_MAX_WAITERS="1")
    client = _client(env)
    with gateway(env) as url, httpx.Client(base_url=url, timeout=30) as http:
        held: dict[str, httpx.Response] = {}
        first = threading.Thread(
            target=lambda: held.update(
                r=http.post("/v1/jobs", json={"text": "Held."}, headers={"Prefer": "wait=4"})
            )
        )
        first.start()
        deadline = time.monotonic() + 20
        while not client.pubsub_channels(keys.done_channel("*")):  # the first one waits
            assert time.monotonic() < deadline, "the first request never started waiting"
            time.sleep(0.02)
        second = http.post("/v1/jobs", json={"text": "Not held."}, headers={"Prefer": "wait=4"})
        first.join()
    assert second.status_code == 202
    assert "preference-applied" not in second.headers  # answered at once, not held
    assert held["r"].status_code == 202 and held["r"].headers["preference-applied"] == "wait=4"
    client.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[RedisServer, Any]]:
    """A redis-server of this test's own, to stop, kill or fill."""
    server = RedisServer(tmp_path / "redis", free_port(), durable=False)
    process = spawn(server.spec())
    server.wait_ready()
    yield server, process
    if process.poll() is None:
        os.kill(process.pid, signal.SIGCONT)
    stop(process, timeout=10)


def _env_on(server: RedisServer, s3_server: SeaweedS3) -> Env:
    return Env({**FAST, **s3_server.env(), "SHOAL_REDIS_URL": server.url}).with_(
        SHOAL_S3_BUCKET="shoal-tests", SHOAL_REDIS_TIMEOUT_SECONDS="1"
    )


def test_a_stopped_redis_is_a_503_within_the_timeout_not_a_hang(
    own_redis: tuple[RedisServer, Any], s3_server: SeaweedS3
) -> None:
    server, process = own_redis
    with gateway(_env_on(server, s3_server)) as url, httpx.Client(base_url=url) as http:
        assert http.post("/v1/jobs", json={"text": "Before."}).status_code == 202
        os.kill(process.pid, signal.SIGSTOP)  # alive but silent: a wedged Redis
        try:
            # The client would give up after 20 s; the gateway answers long before.
            stopped = http.post("/v1/jobs", json={"text": "During."}, timeout=20)
            assert_refused(stopped, 503, "redis_unavailable")
            assert http.get("/readyz", timeout=20).status_code == 503
            assert http.get("/healthz", timeout=20).status_code == 200
        finally:
            os.kill(process.pid, signal.SIGCONT)
        deadline = time.monotonic() + 20
        while http.post("/v1/jobs", json={"text": "After."}, timeout=20).status_code != 202:
            assert time.monotonic() < deadline, "the gateway did not recover by itself"
            time.sleep(0.2)


def fill_up(client: redis.Redis) -> None:
    """Write ballast until Redis refuses: it is at its maxmemory."""
    for index in range(10_000):
        try:
            client.set(f"ballast:{index}", "x" * 16_384)
        except redis.exceptions.OutOfMemoryError:
            return
    raise AssertionError("Redis never ran out of memory")


def test_redis_out_of_memory_is_a_clear_503_and_nothing_is_written(
    tmp_path: Path, s3_server: SeaweedS3
) -> None:
    server = RedisServer(tmp_path / "redis", free_port(), durable=False)
    argv = [*server.spec().argv, "--maxmemory", "3mb", "--maxmemory-policy", "noeviction"]
    process = spawn(ProcessSpec("redis", argv))
    try:
        server.wait_ready()
        client = redis.Redis.from_url(server.url, decode_responses=True)
        with gateway(_env_on(server, s3_server)) as url, httpx.Client(base_url=url) as http:
            assert http.post("/v1/jobs", json={"text": "Fits."}).status_code == 202
            fill_up(client)
            before = (jobs_written(client), client.llen(keys.TTS_QUEUE))
            problem = assert_refused(
                http.post("/v1/jobs", json={"text": "No room."}), 503, "redis_out_of_memory"
            )
            assert "unreachable" not in problem["detail"]
            assert (jobs_written(client), client.llen(keys.TTS_QUEUE)) == before
            assert http.get("/healthz").status_code == 200
            client.delete(*client.scan_iter("ballast:*", count=1000))  # memory comes back
            assert http.post("/v1/jobs", json={"text": "Room again."}).status_code == 202
        client.close()
    finally:
        stop(process, timeout=10)
