"""Gateway metrics: HTTP traffic (by route template), submissions, cancels and the queue.

Counters and histograms live in this process, or, when the gateway runs
several uvicorn workers, in prometheus_client's multiprocess files
(`PROMETHEUS_MULTIPROC_DIR`, an empty folder): every scrape, whichever worker
answers it, then sums all of them. The queue gauges are read from Redis when
Prometheus scrapes, so every process and replica reports the same shared
numbers; alert on them with max(), not sum().
"""

from __future__ import annotations

import os

import redis.asyncio as aredis
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.responses import Response

from shoal import registry
from shoal.settings import Settings

JOBS_SUBMITTED = Counter(
    "shoal_jobs_submitted_total", "Jobs accepted by the gateway.", ["engine", "format"]
)
JOBS_CANCELED = Counter(
    "shoal_jobs_canceled_total", "Jobs canceled by request, by the state they left.", ["state"]
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


class _Snapshot(Collector):
    """Metric families computed for one scrape."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


async def _queue_families(client: aredis.Redis, settings: Settings) -> list[Metric]:
    waiting = GaugeMetricFamily(
        "shoal_queue_waiting", "Messages waiting in a queue.", labels=["queue"]
    )
    running = GaugeMetricFamily(
        "shoal_queue_running", "Jobs running from a queue.", labels=["queue"]
    )
    for queue, counts in (await registry.queue_counts(client)).items():
        waiting.add_metric([queue], counts.waiting)
        running.add_metric([queue], counts.running)
    oldest = GaugeMetricFamily(
        "shoal_oldest_waiting_job_seconds",
        "Age of the oldest job still waiting for a worker.",
        value=await registry.oldest_waiting_seconds(client),
    )
    workers = GaugeMetricFamily(
        "shoal_workers", "Workers seen recently, by engine.", labels=["engine"]
    )
    by_engine: dict[str, int] = {}
    for worker in await registry.live_workers(client, settings.lease_seconds / 3):
        engine = worker.engine or "none"
        by_engine[engine] = by_engine.get(engine, 0) + 1
    for engine, count in sorted(by_engine.items()):
        workers.add_metric([engine], count)
    return [waiting, running, oldest, workers]


async def _autoscaler_families(client: aredis.Redis) -> list[Metric]:
    """Only under `shoal up --autoscale`; where KEDA scales, the HPA exports its own."""
    autoscaler = await registry.load_autoscaler(client)
    if autoscaler is None:
        return []
    replicas = GaugeMetricFamily(
        "shoal_autoscaler_replicas",
        "The local autoscaler's synthesis workers: desired, current (leaving ones too), ready.",
        labels=["state"],
    )
    for state in ("desired", "current", "ready"):
        replicas.add_metric([state], getattr(autoscaler, state))
    metric = GaugeMetricFamily(
        "shoal_autoscaler_metric",
        "The value the local autoscaler scales on (waiting + running).",
        value=autoscaler.metric or 0,
    )
    return [replicas, metric]


def _process_registry() -> CollectorRegistry:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
    return merged


async def render_metrics(client: aredis.Redis, settings: Settings) -> Response:
    shared = CollectorRegistry(auto_describe=False)
    families = await _queue_families(client, settings) + await _autoscaler_families(client)
    shared.register(_Snapshot(families))
    body = generate_latest(_process_registry()) + generate_latest(shared)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
