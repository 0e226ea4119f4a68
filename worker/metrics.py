"""Prometheus metrics of a worker process, served on SHOAL_WORKER_METRICS_PORT."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

JOBS = Counter("shoal_worker_jobs_total", "Jobs this worker ended, by outcome.", ["outcome"])
AUDIO_SECONDS = Counter("shoal_worker_audio_seconds_total", "Seconds of audio synthesized.")
STAGE_SECONDS = Histogram(
    "shoal_worker_stage_seconds",
    "Time per job stage.",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
WEBHOOKS = Counter(
    "shoal_webhook_deliveries_total",
    "Webhook attempts by outcome: delivered, retrying, failed, disabled.",
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
BATCH_SEQUENCES = Gauge(
    "shoal_worker_batch_sequences",
    "Sequences (chunks of jobs' texts) in the Fish Speech engine's decode batch now.",
)
