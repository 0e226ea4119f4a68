"""The worker pool: scale-in never takes a busy worker while an idle one exists, and a
busy worker asked to leave finishes its job first (real Celery workers)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast

import httpx
import redis

from shoal import keys
from shoal.local.pool import WorkerPool
from shoal.local.processes import Supervisor
from tests.support import Env, gateway, start_worker_spec, wait_for_job, wait_for_worker

# About 2.5 s of speech; at 2x real time the job runs about 5 s.
SENTENCE = "A job that takes a while, so that a worker is busy when it is asked to leave."


def wait_until(condition: Callable[[], object], supervisor: Supervisor, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        supervisor.poll()
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_scale_in_retires_the_idle_worker_and_lets_a_busy_one_finish(
    env: Env, sync_redis: redis.Redis
) -> None:
    slow = env.with_(SHOAL_EMULATE_RTF="2")
    supervisor = Supervisor()
    pool = WorkerPool(
        supervisor,
        lambda name: start_worker_spec(slow, name),
        sync_redis,
        retire_timeout=120,
        seen_seconds=10,
    )
    try:
        pool.scale_to(2)
        for name in pool.names:
            wait_for_worker(sync_redis, name, timeout=120)
        with gateway(slow) as url, httpx.Client(base_url=url, timeout=30) as http:
            job = http.post("/v1/jobs", json={"text": SENTENCE}).json()
            inflight = keys.inflight(keys.TTS_QUEUE)
            wait_until(lambda: sync_redis.hget(inflight, job["id"]), supervisor, 60)
            busy = cast(str, sync_redis.hget(inflight, job["id"]))
            idle = next(name for name in pool.names if name != busy)
            # 2 -> 1: the idle one goes, even when the busy one is the newer.
            assert pool.scale_to(1) == [idle]
            assert pool.names == [busy]
            wait_until(lambda: pool.retiring() == 0, supervisor, 60)  # idle: it leaves at once
            # 1 -> 0 while it runs the job: SIGTERM, the job finishes, then it exits.
            busy_worker = pool.workers[0]
            assert pool.scale_to(0) == [busy]
            assert pool.retiring() == 1
            assert sync_redis.hget(inflight, job["id"]) == busy  # still running it
            done = wait_for_job(http, job["id"], timeout=60)
            assert done["status"] == "succeeded" and done["attempts"] == 1
            wait_until(lambda: not busy_worker.alive(), supervisor, 60)
            assert busy_worker.process.returncode == 0  # a warm shutdown
            wait_until(lambda: pool.retiring() == 0 and not supervisor.children, supervisor, 30)
            assert sync_redis.zscore(keys.WORKERS, busy) is None  # it deregistered
    finally:
        supervisor.stop_all()
