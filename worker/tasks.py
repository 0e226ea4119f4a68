"""Celery tasks: thin entry points into the worker's runtime."""

from __future__ import annotations

import time

from celery.exceptions import Reject

from shoal import keys
from worker.celery_app import app
from worker.runtime import runtime
from worker.synthesis import ClaimUnavailable

# Before a message goes back for want of Redis: a pause, not a hot loop of redeliveries.
REQUEUE_PAUSE_SECONDS = 1.0


@app.task(name=keys.SYNTHESIZE_TASK)
def synthesize(job_id: str) -> None:
    runner = runtime().runner
    if runner is None:
        raise RuntimeError(f"this worker does not consume {keys.TTS_QUEUE!r}")
    try:
        runner.run(job_id)
    except ClaimUnavailable as exc:
        # acks_late acknowledges a task that raised; the job was never claimed, so its
        # message must survive: back to the queue (or, if Redis refuses even that, it
        # stays in the broker's unacked set, where maintenance and the broker find it).
        time.sleep(REQUEUE_PAUSE_SECONDS)
        raise Reject(str(exc), requeue=True) from exc


@app.task(name=keys.DELIVER_WEBHOOK_TASK)
def deliver_webhook(job_id: str, event: str, webhook_id: str) -> None:
    sender = runtime().webhooks
    if sender is None:
        raise RuntimeError(f"this worker does not consume {keys.WEBHOOK_QUEUE!r}")
    sender.run(job_id, event, webhook_id)
