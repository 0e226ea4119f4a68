"""Failures between a worker taking a message and claiming its job: none lost or run twice.

The worker connects as its own Redis ACL user, so the test can take keys away
from it while the gateway (the default user) goes on: the job records (the
claim fails: the message goes back to the queue), or the broker's unacked
record written right after the pop (the message is gone from Redis). A worker
killed after it took a message but before its claim leaves the message in the
broker's unacked set with nobody to finish it. Each leaves a job queued without
a runnable message; every job still runs exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from shoal import keys
from shoal.local.processes import ProcessSpec
from shoal.local.redis_server import RedisServer
from shoal.local.s3_server import SeaweedS3
from tests.conftest import FAST, private_redis
from tests.support import (
    Env,
    assert_speech,
    decode,
    gateway,
    running,
    start_worker_spec,
    wait_for_job,
    wait_for_worker,
)

BROKER_KEYS = [keys.BROKER_UNACKED, keys.BROKER_UNACKED_INDEX, "unacked_mutex", "_kombu*"]
REGISTRY_KEYS = [keys.WORKERS, keys.worker_info("*"), keys.catalog("*")]


def _grant(admin: redis.Redis, patterns: list[str]) -> None:
    rules = ["on", ">worker-secret", "&*", "+@all", "resetkeys", *(f"~{p}" for p in patterns)]
    admin.execute_command("ACL", "SETUSER", "worker", *rules)  # type: ignore[no-untyped-call]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with private_redis(tmp_path / "redis") as server:
        yield server


def _env(redis_server: RedisServer, s3_server: SeaweedS3) -> Env:
    return Env({**FAST, **s3_server.env(), "SHOAL_REDIS_URL": redis_server.url,
                "SHOAL_S3_BUCKET": "shoal-claim-outage"})  # fmt: skip


def _worker(env: Env, redis_server: RedisServer, name: str) -> ProcessSpec:
    """A worker that reaches Redis as the ACL user `worker`."""
    url = redis_server.url.replace("redis://", "redis://worker:worker-secret@")
    return start_worker_spec(env.with_(SHOAL_REDIS_URL=url), name)


def _wait_for_a_pop(admin: redis.Redis, before: int) -> None:
    deadline = time.monotonic() + 30
    while admin.llen(keys.TTS_QUEUE) == before:
        assert time.monotonic() < deadline, "the worker never took a message"
        time.sleep(0.02)


def _assert_each_ran_once(done: list[dict[str, Any]]) -> None:
    assert [job["status"] for job in done] == ["succeeded"] * len(done), done
    assert [job["attempts"] for job in done] == [1] * len(done)
    for job in done:
        assert_speech(decode(httpx.get(job["audio"]["url"]).content), 22050, 0.3, 5)


@pytest.mark.parametrize(
    "refused",
    [
        # The claim fails; the message goes back to the queue.
        [f"{keys.TTS_QUEUE}*", *BROKER_KEYS, *REGISTRY_KEYS],
        # Popped, but the broker cannot record that it holds it: the message is gone.
        [f"{keys.TTS_QUEUE}*", "unacked_mutex", "_kombu*", *REGISTRY_KEYS],
    ],
    ids=["claim", "unacked-record"],
)
def test_jobs_taken_while_the_worker_cannot_write_still_run_once(
    own_redis: RedisServer, s3_server: SeaweedS3, refused: list[str]
) -> None:
    admin = redis.Redis.from_url(own_redis.url, decode_responses=True)
    _grant(admin, ["*"])
    env = _env(own_redis, s3_server)
    worker = _worker(env, own_redis, "tts-refused@tests")
    with gateway(env) as url, httpx.Client(base_url=url, timeout=30) as http, running(worker):
        wait_for_worker(admin, "tts-refused@tests")
        time.sleep(1)  # the consumer is connected
        _grant(admin, refused)
        ids = [http.post("/v1/jobs", json={"text": f"Job {n}."}).json()["id"] for n in range(3)]
        _wait_for_a_pop(admin, before=3)
        time.sleep(3)  # it could not claim its job (or record that it holds the message)
        assert [admin.hget(keys.job(i), "status") for i in ids] == ["queued"] * 3
        _grant(admin, ["*"])
        # A refused write can make Celery give up (an ACL error is not a lost connection):
        # a second worker stands in for the restart a supervisor would do.
        with running(start_worker_spec(env, "tts-heir@tests")):
            _assert_each_ran_once([wait_for_job(http, job_id, timeout=60) for job_id in ids])
    admin.close()


def test_a_worker_killed_before_its_claim_leaves_no_job_behind(
    own_redis: RedisServer, s3_server: SeaweedS3
) -> None:
    admin = redis.Redis.from_url(own_redis.url, decode_responses=True)
    _grant(admin, ["*"])
    env = _env(own_redis, s3_server)
    with gateway(env) as url, httpx.Client(base_url=url, timeout=30) as http:
        with running(_worker(env, own_redis, "tts-doomed@tests")) as doomed:
            wait_for_worker(admin, "tts-doomed@tests")
            time.sleep(1)
            _grant(admin, [f"{keys.TTS_QUEUE}*", *BROKER_KEYS, *REGISTRY_KEYS])
            job_id = http.post("/v1/jobs", json={"text": "Orphaned."}).json()["id"]
            _wait_for_a_pop(admin, before=1)
            deadline = time.monotonic() + 10
            while not admin.hlen(keys.BROKER_UNACKED):  # it holds the message, unclaimed
                assert time.monotonic() < deadline
                time.sleep(0.01)
            doomed.kill()  # before the failed claim can put the message back
            doomed.wait()
        assert admin.hget(keys.job(job_id), "status") == "queued"
        assert admin.llen(keys.TTS_QUEUE) == 0 and admin.hlen(keys.BROKER_UNACKED) == 1
        with running(start_worker_spec(env, "tts-heir@tests")):
            done = wait_for_job(http, job_id, timeout=60)
    _assert_each_ran_once([done])
    admin.close()
