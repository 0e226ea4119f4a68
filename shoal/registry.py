"""Who is working: workers announce themselves and their engine's catalog.

Workers write (synchronously, from the Celery process); the gateway reads
(asynchronously) for /v1/queue, /v1/voices and submit-time validation.
"""

from __future__ import annotations

import time

import redis
import redis.asyncio as aredis
from pydantic import BaseModel, Field

from shoal import keys
from shoal.completions import RecentJobs
from shoal.voices import Catalog

# A worker silent for this many heartbeats is no longer listed.
SEEN_HEARTBEATS = 3


class WorkerInfo(BaseModel):
    name: str = Field(examples=["tts-1@gpu-node-3"])
    engine: str | None = Field(None, examples=["espeak"])
    queues: list[str]
    pid: int
    started_at: float
    last_seen: float = 0.0
    slots: int = Field(1, description="Jobs the worker runs at once (its engine's slots).")


class AutoscalerStatus(BaseModel):
    """What the local autoscaler (`shoal up --autoscale`) decided at its last sync."""

    source: str = Field(description="The ScaledObject it applies (and the patch, if any).")
    desired: int = Field(description="Workers it wants (the HPA's desiredReplicas).")
    current: int = Field(description="Worker processes running, those still finishing included.")
    ready: int = Field(description="Workers registered and heartbeating, not leaving.")
    retiring: int = Field(description="Workers finishing their jobs after a scale-in.")
    min_replicas: int
    max_replicas: int
    metric: float | None = Field(description="The scaling formula's value (waiting + running).")
    target: float = Field(description="The metric per worker it scales to (x the slots).")
    slots: int = Field(description="Jobs one worker runs at once.")
    active: bool = Field(description="Above the activation target (KEDA's Active condition).")
    reason: str
    updated_at: float


class QueueCounts(BaseModel):
    waiting: int = Field(description="Messages in the Celery list.")
    running: int = Field(description="Jobs a worker is running now.")


class QueueState(BaseModel):
    """GET /v1/queue."""

    queues: dict[str, QueueCounts]
    oldest_waiting_seconds: float = Field(description="Age of the oldest job not yet started.")
    workers: list[WorkerInfo] = Field(description="Workers seen in the last few heartbeats.")
    recent: RecentJobs = Field(description="Jobs that ended in the last `window` seconds.")
    autoscaler: AutoscalerStatus | None = Field(
        None,
        description="The local autoscaler's replicas (`shoal up --autoscale`); "
        "null where KEDA scales (read the HPA instead).",
    )


def register_worker(client: redis.Redis, info: WorkerInfo, catalog: Catalog | None) -> None:
    with client.pipeline() as pipe:
        if catalog is not None:
            pipe.set(keys.catalog(catalog.engine), catalog.model_dump_json())
        pipe.set(keys.worker_info(info.name), info.model_dump_json())
        pipe.zadd(keys.WORKERS, {info.name: time.time()})
        pipe.execute()


def heartbeat_worker(client: redis.Redis, name: str) -> None:
    client.zadd(keys.WORKERS, {name: time.time()})


def deregister_worker(client: redis.Redis, name: str) -> None:
    with client.pipeline() as pipe:
        pipe.zrem(keys.WORKERS, name)
        pipe.delete(keys.worker_info(name))
        pipe.execute()


async def load_catalog(client: aredis.Redis, engine: str) -> Catalog | None:
    raw = await client.get(keys.catalog(engine))
    return Catalog.model_validate_json(raw) if raw else None


async def live_workers(client: aredis.Redis, heartbeat_seconds: float) -> list[WorkerInfo]:
    now = time.time()
    seen: list[tuple[str, float]] = await client.zrangebyscore(
        keys.WORKERS, now - SEEN_HEARTBEATS * heartbeat_seconds, "+inf", withscores=True
    )  # type: ignore[assignment]
    if not seen:
        return []
    raws = await client.mget([keys.worker_info(name) for name, _ in seen])
    workers = []
    for (_, last_seen), raw in zip(seen, raws, strict=True):
        if raw:
            info = WorkerInfo.model_validate_json(raw)
            info.last_seen = last_seen
            workers.append(info)
    return workers


async def queue_counts(client: aredis.Redis) -> dict[str, QueueCounts]:
    async with client.pipeline(transaction=False) as pipe:
        for queue in keys.QUEUES:
            pipe.llen(queue)
            pipe.hlen(keys.inflight(queue))
        replies = await pipe.execute()
    return {
        queue: QueueCounts(waiting=replies[2 * i], running=replies[2 * i + 1])
        for i, queue in enumerate(keys.QUEUES)
    }


async def oldest_waiting_seconds(client: aredis.Redis) -> float:
    oldest: list[tuple[str, float]] = await client.zrange(keys.QUEUED, 0, 0, withscores=True)  # type: ignore[assignment]
    return max(0.0, time.time() - oldest[0][1]) if oldest else 0.0


def publish_autoscaler(client: redis.Redis, status: AutoscalerStatus, ttl_seconds: float) -> None:
    """Expires unless refreshed, so a stopped autoscaler is not reported as running."""
    client.set(keys.AUTOSCALER, status.model_dump_json(), px=int(ttl_seconds * 1000))


async def load_autoscaler(client: aredis.Redis) -> AutoscalerStatus | None:
    raw = await client.get(keys.AUTOSCALER)
    return AutoscalerStatus.model_validate_json(raw) if raw else None
