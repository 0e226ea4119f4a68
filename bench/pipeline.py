"""Jobs per second end to end, and the per-job overhead outside synthesis.

    python -m bench.pipeline [--jobs 2000] [--workers 2] [--latency-jobs 100]

Workers run the `tone` engine (a fixed 100 ms clip, at once), so what is
measured is the pipeline: gateway, Redis job store, Celery, encoding, upload.

1. Latency: with idle workers, jobs are submitted one at a time; the job
   records (Redis time) and the workers' log lines give the queue wait and
   each stage's time.
2. Throughput: `--jobs` jobs are queued through the gateway with no worker
   running, then `--workers` workers drain them. The same number of bare Celery
   workers running a no-op task drain as many messages from the same Redis:
   the ceiling. Both are timed the same way, from the first message taken to
   the queue and in-flight set being empty.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import redis

from bench.common import backends, machine, median, process_env, save, server, table
from shoal import keys
from shoal.local.processes import ProcessSpec, spawn, stop
from shoal.local.stack import worker_spec

STAGES = ["claim", "synthesize", "encode", "upload", "record"]
BODY = {"text": "A short sentence for the pipeline benchmark."}  # the default format, WAV


@contextmanager
def workers(count: int, env: dict[str, str], log_dir: Path) -> Iterator[None]:
    processes = []
    try:
        for index in range(count):
            spec = worker_spec(f"tts-bench-{index}@bench", keys.TTS_QUEUE, env)
            spec.log_file = log_dir / f"worker-{index}.log"
            processes.append(spawn(spec))
        yield
    finally:
        for process in processes:
            stop(process, timeout=20)


def wait_workers(client: redis.Redis, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while client.zcard(keys.WORKERS) < count:
        assert time.monotonic() < deadline, "workers did not start"
        time.sleep(0.05)


def drain(client: redis.Redis, queue: str, inflight: str, total: int) -> float:
    """Seconds from the first message taken until the queue and in-flight work are empty."""
    deadline = time.monotonic() + 120
    while client.llen(queue) == total:
        if time.monotonic() > deadline:
            raise SystemExit("no worker took a message within 120 s; see the worker logs")
        time.sleep(0.001)
    started = time.perf_counter()
    while client.llen(queue) or client.hlen(inflight):
        time.sleep(0.002)
    return time.perf_counter() - started


async def submit_all(url: str, count: int, concurrency: int = 32) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        remaining = iter(range(count))

        async def submitter() -> None:
            for _ in remaining:
                response = await http.post("/v1/jobs", json=BODY)
                assert response.status_code == 202, response.text

        await asyncio.gather(*(submitter() for _ in range(concurrency)))


def stage_times(log_dir: Path) -> dict[str, list[float]]:
    stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for path in log_dir.glob("worker-*.log"):
        for line in path.read_text().splitlines():
            if line.startswith("{") and '"job succeeded"' in line:
                timings = json.loads(line)["stage_ms"]
                for stage in STAGES:
                    stages[stage].append(timings[stage])
    return stages


def latency_phase(url: str, client: redis.Redis, jobs: int) -> dict[str, float]:
    end_to_end, queue_wait, in_worker = [], [], []
    with httpx.Client(base_url=url, timeout=30) as http:
        for _ in range(jobs):
            started = time.perf_counter()
            job = http.post("/v1/jobs", json=BODY, headers={"Prefer": "wait=10"}).json()
            end_to_end.append(1000 * (time.perf_counter() - started))
            assert job["status"] == "succeeded", job
            record = client.hmget(keys.job(job["id"]), "created_at", "started_at", "finished_at")
            created, began, finished = (float(v) for v in record)  # type: ignore[arg-type]
            queue_wait.append(1000 * (began - created))
            in_worker.append(1000 * (finished - began))
    return {
        "end_to_end_ms": median(end_to_end),
        "queue_wait_ms": median(queue_wait),
        "claim_to_recorded_ms": median(in_worker),
    }


def run(jobs: int, worker_count: int, latency_jobs: int) -> dict[str, object]:
    results: dict[str, object] = {}
    with backends() as services, ExitStack() as stack:
        client = redis.Redis.from_url(services.redis_url)
        log_dir = Path(tempfile.mkdtemp(prefix="shoal-bench-logs-"))
        settings = {**services.env, "SHOAL_LOG_LEVEL": "INFO", "SHOAL_LOG_FORMAT": "json"}
        env = process_env(**settings, SHOAL_ENGINE="tone")
        gateway = stack.enter_context(server("api.main:create_app", env))

        with workers(worker_count, env, log_dir):
            wait_workers(client, worker_count)
            print(f"latency: {latency_jobs} jobs, one at a time")
            results["latency"] = latency_phase(gateway.url, client, latency_jobs)
        latency_stages = {stage: median(v) for stage, v in stage_times(log_dir).items()}
        results["stages_ms"] = latency_stages

        for path in log_dir.glob("*.log"):
            path.unlink()
        client.delete(keys.WORKERS)
        print(f"throughput: queueing {jobs} jobs, then {worker_count} workers drain them")
        asyncio.run(submit_all(gateway.url, jobs))
        with workers(worker_count, env, log_dir):
            seconds = drain(client, keys.TTS_QUEUE, keys.inflight(keys.TTS_QUEUE), jobs)
        results["shoal_jobs_per_second"] = jobs / seconds

        print(f"ceiling: {jobs} no-op messages, {worker_count} bare Celery workers")
        results["celery_jobs_per_second"] = jobs / bare_celery(
            services.env, jobs, worker_count, "noop"
        )
        print(f"baseline: {jobs} encode+upload tasks, {worker_count} bare Celery workers")
        results["celery_upload_jobs_per_second"] = jobs / bare_celery(
            services.env, jobs, worker_count, "encode_upload"
        )
        client.close()
    return results


def bare_celery(settings: dict[str, str], jobs: int, worker_count: int, task: str) -> float:
    from bench import celery_noop

    env = process_env(**settings)
    celery_noop.app.conf.update(broker_url=settings["SHOAL_REDIS_URL"])
    for index in range(jobs):
        celery_noop.app.send_task(f"bench.{task}", args=(f"job_bench{index}",))
    client = redis.Redis.from_url(settings["SHOAL_REDIS_URL"])
    argv = [sys.executable, "-m", "celery", "-A", "bench.celery_noop", "--quiet", "worker"]
    argv += ["--pool=solo", "-Q", celery_noop.QUEUE, "--loglevel=WARNING"]
    argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    processes = [
        spawn(ProcessSpec(name=f"celery-{i}", argv=[*argv, "-n", f"noop-{i}@bench"], env=env))
        for i in range(worker_count)
    ]
    try:
        return drain(client, celery_noop.QUEUE, "unacked", jobs)
    finally:
        for process in processes:
            stop(process, timeout=20)
        client.close()


def report(results: dict[str, object], worker_count: int) -> None:
    latency = results["latency"]
    stages = results["stages_ms"]
    assert isinstance(latency, dict) and isinstance(stages, dict)
    shoal = float(results["shoal_jobs_per_second"])  # type: ignore[arg-type]
    celery = float(results["celery_jobs_per_second"])  # type: ignore[arg-type]
    upload = float(results["celery_upload_jobs_per_second"])  # type: ignore[arg-type]
    print()
    print(f"pipeline, {worker_count} workers, tone engine ({machine()})")
    print(table(["", "jobs/s", "/no-op", "/encode+upload"], [
        ["shoal: queued job to audio in S3, recorded", shoal, shoal / celery, shoal / upload],
        ["bare Celery: no-op task (ceiling)", celery, 1.0, celery / upload],
        ["bare Celery: encode + upload, no job store", upload, upload / celery, 1.0],
    ]))  # fmt: skip
    overhead = latency["claim_to_recorded_ms"] - stages["synthesize"] + latency["queue_wait_ms"]
    rows = [
        ["queue wait (created -> claimed)", latency["queue_wait_ms"]],
        *[[f"stage: {stage}", stages[stage]] for stage in STAGES],
        ["claimed -> recorded (Redis time)", latency["claim_to_recorded_ms"]],
        ["overhead outside synthesis", overhead],
        ["client POST -> finished job (Prefer: wait)", latency["end_to_end_ms"]],
    ]
    print()
    print(table(["per job, idle pipeline (median)", "ms"], rows))
    print(
        f"\nshoal = {shoal / celery:.0%} of bare Celery (target >= 50 %), {shoal / upload:.0%} "
        f"of Celery doing the same encode + upload; median overhead outside synthesis "
        f"{overhead:.1f} ms (target <= 15 ms)"
    )
    results["overhead_outside_synthesis_ms"] = overhead
    results["vs_celery"] = shoal / celery
    results["vs_celery_encode_upload"] = shoal / upload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--latency-jobs", type=int, default=100)
    args = parser.parse_args()
    results = run(args.jobs, args.workers, args.latency_jobs)
    report(results, args.workers)
    print(f"saved {save('pipeline', {'args': vars(args), **results})}")


if __name__ == "__main__":
    main()
