"""Celery tasks: thin entry points into the worker's runtime."""

from __future__ import annotations

from shoal import completions, keys
from worker.celery_app import app
from worker.runtime import runtime


@app.task(name=keys.SYNTHESIZE_TASK)
def synthesize(job_id: str) -> None:
    runner = runtime().runner
    if runner is None:
        raise RuntimeError(f"this worker does not consume {keys.TTS_QUEUE!r}")
    try:
        runner.run(job_id)
    finally:  # the job's end, for completions per second and time to audio
        completions.record(runtime().redis, job_id)


@app.task(name=keys.DELIVER_WEBHOOK_TASK)
def deliver_webhook(job_id: str, event: str, webhook_id: str) -> None:
    sender = runtime().webhooks
    if sender is None:
        raise RuntimeError(f"this worker does not consume {keys.WEBHOOK_QUEUE!r}")
    sender.run(job_id, event, webhook_id)
