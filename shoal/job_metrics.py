"""Job outcomes that both deployables record, so both count them.

A job fails on a worker (engine error, bad voice) or in the gateway's
maintenance loop (`worker_lost`, `timeout`); it goes back to the queue from a
worker (storage or Redis away) or from maintenance (its lease lapsed). Each
process counts the transitions it won, so `sum()` over every process is the
total, each job counted once.
"""

from __future__ import annotations

from prometheus_client import Counter

JOBS_FAILED = Counter("shoal_jobs_failed_total", "Jobs that ended failed, by error code.", ["code"])
JOBS_REQUEUED = Counter(
    "shoal_jobs_requeued_total",
    "Runs that ended with the job back in the queue: transient (storage or Redis away "
    "on a worker) or lost (its worker stopped renewing the lease).",
    ["reason"],
)
