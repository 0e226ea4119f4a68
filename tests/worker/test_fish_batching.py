"""A batching fish-speech worker end to end: gateway, Redis, a real Celery worker with
SHOAL_FISH_MAX_BATCH=3 (tiny checkpoint, CPU) and SeaweedFS.

Concurrent jobs run together in one worker and each succeeds once; a warm
shutdown (SIGTERM) while several jobs are in flight finishes every one of them.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from shoal.local.ports import free_port
from tests.conftest import FishStack
from tests.support import gateway, running, start_worker_spec, wait_for_job, wait_for_worker

RATE, FRAME = 44100, 2048
SLOTS = 3


def submit(http: httpx.Client, frames: int, seed: int) -> str:
    body = {
        "text": f"Batched job number {seed}.",
        "engine_params": {"max_new_tokens": frames, "seed": seed},
    }
    response = http.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def _time(job: dict[str, Any], field: str) -> float:
    return datetime.fromisoformat(job[field]).timestamp()


def batch_gauge(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    found = re.search(r"^shoal_worker_batch_sequences ([\d.]+)$", text, re.MULTILINE)
    assert found, "the worker exports shoal_worker_batch_sequences"
    return float(found.group(1))


@pytest.fixture
def batching(fish_stacks: Callable[[int], FishStack]) -> FishStack:
    stack = fish_stacks(2)
    stack.env = stack.env.with_(SHOAL_FISH_MAX_BATCH=str(SLOTS))
    return stack


def test_concurrent_jobs_share_the_batch_and_each_succeeds_once(batching: FishStack) -> None:
    metrics = free_port()
    env = batching.env.with_(SHOAL_WORKER_METRICS_PORT=str(metrics))
    with (
        gateway(env) as url,
        httpx.Client(base_url=url, timeout=30) as http,
        running(start_worker_spec(env, "batching@tests")),
    ):
        wait_for_worker(batching.redis, "batching@tests", timeout=120)
        frames = [60, 24, 90, 36, 48, 72]
        ids = [submit(http, n, seed) for seed, n in enumerate(frames)]
        most = 0.0
        while not all(http.get(f"/v1/jobs/{i}").json()["status"] == "succeeded" for i in ids):
            most = max(most, batch_gauge(metrics))
            time.sleep(0.02)
        jobs = [wait_for_job(http, i, timeout=120) for i in ids]
    for job, n in zip(jobs, frames, strict=True):
        assert job["status"] == "succeeded" and job["attempts"] == 1
        assert job["audio"]["duration_seconds"] == pytest.approx(n * FRAME / RATE, abs=1e-3)
    # Three at once in one worker: the third started before the first had finished.
    starts = sorted(_time(j, "started_at") for j in jobs)
    assert starts[SLOTS - 1] < min(_time(j, "finished_at") for j in jobs)
    assert most >= 2


def test_warm_shutdown_finishes_every_job_in_flight(batching: FishStack) -> None:
    with (
        gateway(batching.env) as url,
        httpx.Client(base_url=url, timeout=30) as http,
        running(start_worker_spec(batching.env, "leaving@tests")) as worker,
    ):
        wait_for_worker(batching.redis, "leaving@tests", timeout=120)
        ids = [submit(http, 200 + 20 * seed, seed) for seed in range(SLOTS)]
        for job_id in ids:
            wait_for_job(http, job_id, statuses={"running"}, timeout=60)
        worker.send_signal(signal.SIGTERM)  # as Kubernetes does on scale-in
        jobs = [wait_for_job(http, i, timeout=120) for i in ids]
        assert worker.wait(timeout=60) == 0  # warm: a clean exit after its jobs
    for seed, job in enumerate(jobs):
        assert job["status"] == "succeeded" and job["attempts"] == 1
        frames = 200 + 20 * seed
        assert job["audio"]["duration_seconds"] == pytest.approx(frames * FRAME / RATE, abs=1e-3)
