"""Prometheus metrics of a worker process, served on SHOAL_WORKER_METRICS_PORT.

A worker is one process (a pool of threads, never forked children), so the
default registry is right here. The code it measures calls one `observe_*`
function per outcome and stays free of metric details.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

from shoal.job_metrics import JOBS_FAILED, JOBS_REQUEUED
from shoal.jobs import JobRecord, StoredAudio

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Waiting for a worker and submit-to-audio: up to the scale-out of a cold GPU pool.
_LATENCY = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

JOBS = Counter("shoal_worker_jobs_total", "Jobs this worker ended, by outcome.", ["outcome"])
AUDIO_SECONDS = Counter("shoal_worker_audio_seconds_total", "Seconds of audio synthesized.")
STAGE_SECONDS = Histogram(
    "shoal_worker_stage_seconds", "Time per job stage.", ["stage"], buckets=_SECONDS
)
QUEUE_WAIT = Histogram(
    "shoal_job_queue_wait_seconds",
    "From submit to a worker starting the job (first attempts only).",
    buckets=_LATENCY,
)
TIME_TO_AUDIO = Histogram(
    "shoal_job_time_to_audio_seconds",
    "From submit to the audio stored and the job succeeded: what a client waits.",
    buckets=_LATENCY,
)
REAL_TIME_FACTOR = Histogram(
    "shoal_worker_real_time_factor",
    "Synthesis seconds per second of audio (below 1: faster than real time).",
    buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5),
)
SLOTS = Gauge("shoal_worker_slots", "Jobs this worker can run at once.", ["engine"])
BUSY_SLOTS = Gauge("shoal_worker_busy_slots", "Jobs this worker is running now.", ["engine"])
BATCH_SEQUENCES = Gauge(
    "shoal_worker_batch_sequences",
    "Sequences in the engine's current decode batch (set by the Fish Speech engine).",
)
WEBHOOKS = Counter(
    "shoal_webhook_deliveries_total",
    "Webhook attempts by outcome: delivered, retrying, failed, disabled, expired "
    "(retries cut at the job's expiry, or the job gone before the attempt).",
    ["outcome"],
)
WEBHOOK_SECONDS = Histogram(
    "shoal_webhook_attempt_seconds",
    "Duration of one webhook attempt, resolution and request included.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60),
)
REFERENCE_CODES = Counter(
    "shoal_worker_reference_codes_total",
    "Cloned-voice codes by where they came from: memory, storage (persisted by a worker) "
    "or encoded here.",
    ["source"],
)


def observe_slots(engine: str, slots: int, busy: Callable[[], float]) -> None:
    """Batch occupancy: busy / slots, read from the heartbeat at scrape time."""
    SLOTS.labels(engine).set(slots)
    BUSY_SLOTS.labels(engine).set_function(busy)


def observe_started(record: JobRecord) -> None:
    if record.attempts == 1 and record.started_at is not None:
        QUEUE_WAIT.observe(max(0.0, record.started_at - record.created_at))


def observe_succeeded(record: JobRecord, audio: StoredAudio, stage_ms: dict[str, float]) -> None:
    JOBS.labels("succeeded").inc()
    AUDIO_SECONDS.inc(audio.duration_seconds)
    TIME_TO_AUDIO.observe(max(0.0, time.time() - record.created_at))
    if audio.duration_seconds > 0 and "synthesize" in stage_ms:
        REAL_TIME_FACTOR.observe(stage_ms["synthesize"] / 1000 / audio.duration_seconds)


def observe_failed(code: str) -> None:
    JOBS.labels("failed").inc()
    JOBS_FAILED.labels(code).inc()


def observe_requeued() -> None:
    JOBS.labels("requeued").inc()
    JOBS_REQUEUED.labels("transient").inc()


def observe_discarded() -> None:
    """The run finished but the job was canceled or taken over meanwhile."""
    JOBS.labels("discarded").inc()
