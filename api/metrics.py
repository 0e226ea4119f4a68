"""Gateway metrics: HTTP traffic (by route template), submissions and the queue.

The queue gauges are read from Redis when Prometheus scrapes, so every gateway
replica reports the same shared numbers; alert on them with max(), not sum().
"""

from __future__ import annotations

import time

import redis.asyncio as aredis
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
AUTOSCALER_REPLICAS = Gauge(
    "shoal_autoscaler_replicas",
    "The local autoscaler's synthesis workers: desired, current (leaving ones included), ready.",
    ["state"],
)
AUTOSCALER_METRIC = Gauge(
    "shoal_autoscaler_metric", "The value the local autoscaler scales on (waiting + running)."
)

HTTP_REQUESTS = Counter(
    "shoal_http_requests_total", "HTTP requests by route template.", ["method", "route", "status"]
)
HTTP_SECONDS = Histogram(
    "shoal_http_request_duration_seconds",
    "HTTP request latency by route template.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
_UNTRACKED = frozenset({"/metrics", "/healthz", "/readyz"})


class HttpMetrics:
    """Requests and latency per route template (`/v1/jobs/{job_id}`, never the raw path).

    A few lines of ASGI instead of prometheus-fastapi-instrumentator, which
    matched every request against every route a second time: it cost about a
    fifth of the gateway's CPU per submit (see docs/benchmarks.md).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _UNTRACKED:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")  # set by the router on the shared scope
            template = getattr(route, "path", "unmatched")
            HTTP_REQUESTS.labels(scope["method"], template, str(status)).inc()
            HTTP_SECONDS.labels(scope["method"], template).observe(time.perf_counter() - started)


async def render_metrics(client: aredis.Redis, settings: Settings) -> Response:
    for queue, counts in (await registry.queue_counts(client)).items():
        QUEUE_WAITING.labels(queue).set(counts.waiting)
        QUEUE_RUNNING.labels(queue).set(counts.running)
    OLDEST_WAITING.set(await registry.oldest_waiting_seconds(client))
    workers = await registry.live_workers(client, settings.lease_seconds / 3)
    WORKERS.clear()
    for worker in workers:
        WORKERS.labels(worker.engine or "none").inc()
    AUTOSCALER_REPLICAS.clear()
    autoscaler = await registry.load_autoscaler(client)
    if autoscaler is not None:  # only under `shoal up --autoscale`; KEDA exports its own
        for state in ("desired", "current", "ready"):
            AUTOSCALER_REPLICAS.labels(state).set(getattr(autoscaler, state))
        AUTOSCALER_METRIC.set(autoscaler.metric or 0)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
