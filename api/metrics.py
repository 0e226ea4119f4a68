"""Gateway metrics: HTTP traffic (by route template), submissions and the queue.

The queue gauges are read from Redis when Prometheus scrapes, so every gateway
replica reports the same shared numbers; alert on them with max(), not sum().
"""

from __future__ import annotations

import redis.asyncio as aredis
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.responses import Response

from shoal import registry
from shoal.settings import Settings

JOBS_SUBMITTED = Counter(
    "shoal_jobs_submitted_total", "Jobs accepted by the gateway.", ["engine", "format"]
)
QUEUE_WAITING = Gauge("shoal_queue_waiting", "Messages waiting in a queue.", ["queue"])
QUEUE_RUNNING = Gauge("shoal_queue_running", "Jobs running from a queue.", ["queue"])
OLDEST_WAITING = Gauge(
    "shoal_oldest_waiting_job_seconds", "Age of the oldest job still waiting for a worker."
)
WORKERS = Gauge("shoal_workers", "Workers seen recently, by engine.", ["engine"])

instrumentator = Instrumentator(
    excluded_handlers=["/metrics", "/healthz", "/readyz"],
    should_group_status_codes=False,
)


async def render_metrics(client: aredis.Redis, settings: Settings) -> Response:
    for queue, counts in (await registry.queue_counts(client)).items():
        QUEUE_WAITING.labels(queue).set(counts.waiting)
        QUEUE_RUNNING.labels(queue).set(counts.running)
    OLDEST_WAITING.set(await registry.oldest_waiting_seconds(client))
    workers = await registry.live_workers(client, settings.lease_seconds / 3)
    WORKERS.clear()
    for worker in workers:
        WORKERS.labels(worker.engine or "none").inc()
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
