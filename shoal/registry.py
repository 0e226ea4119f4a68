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


class QueueCounts(BaseModel):
    waiting: int = Field(description="Messages in the Celery list.")
    running: int = Field(description="Jobs a worker is running now.")


class QueueState(BaseModel):
    """GET /v1/queue."""

    queues: dict[str, QueueCounts]
    oldest_waiting_seconds: float = Field(description="Age of the oldest job not yet started.")
    workers: list[WorkerInfo] = Field(description="Workers seen in the last few heartbeats.")


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
