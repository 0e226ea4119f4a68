"""`--max-jobs` and `--idle-exit`: a worker run by a KEDA ScaledJob ends by itself."""

from __future__ import annotations

import dataclasses
import subprocess
import time

import httpx
import redis

from shoal import keys
from tests.support import Env, gateway, running, start_worker_spec, wait_for_job, wait_for_worker


def _exit_code(process: subprocess.Popen[bytes], timeout: float) -> int:
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the worker was still running after {timeout:g} s") from None


def test_max_jobs_leaves_after_its_job_and_loses_none(env: Env) -> None:
    client = redis.Redis.from_url(env.values["SHOAL_REDIS_URL"], decode_responses=True)
    spec = start_worker_spec(env, "tts-once@tests")
    once = dataclasses.replace(spec, argv=[*spec.argv, "--max-jobs", "1"])
    with gateway(env) as url, httpx.Client(base_url=url) as http:
        with running(once) as worker:
            wait_for_worker(client, "tts-once@tests")
            first = http.post("/v1/jobs", json={"text": "First."}).json()
            second = http.post("/v1/jobs", json={"text": "Second."}).json()
            assert wait_for_job(http, first["id"])["status"] == "succeeded"
            assert _exit_code(worker, timeout=20) == 0  # a warm shutdown, not a crash
        # The job it did not run went back to (or stayed in) the queue.
        assert http.get(f"/v1/jobs/{second['id']}").json()["status"] == "queued"
        assert client.llen(keys.TTS_QUEUE) == 1
        with running(start_worker_spec(env, "tts-next@tests")):
            assert wait_for_job(http, second["id"])["status"] == "succeeded"
    client.close()


def test_idle_exit_leaves_when_no_job_comes(env: Env) -> None:
    client = redis.Redis.from_url(env.values["SHOAL_REDIS_URL"], decode_responses=True)
    spec = start_worker_spec(env, "tts-idle@tests")
    idle = dataclasses.replace(spec, argv=[*spec.argv, "--idle-exit", "1"])
    with running(idle) as worker:
        wait_for_worker(client, "tts-idle@tests")
        started = time.monotonic()
        assert _exit_code(worker, timeout=20) == 0
        assert time.monotonic() - started >= 0.5  # it waited for work before leaving
    # It left the worker list on its way out.
    assert client.zscore(keys.WORKERS, "tts-idle@tests") is None
    client.close()
