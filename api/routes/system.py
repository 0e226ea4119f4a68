"""Health, readiness, metrics and the queue's state."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from api.deps import ServicesDep, api_key
from api.metrics import render_metrics
from shoal import completions, registry
from shoal.errors import Unavailable
from shoal.registry import QueueState

router = APIRouter(tags=["system"])


class Health(BaseModel):
    status: str = Field(examples=["ok"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", summary="Redis and storage are reachable", responses={503: {}})
async def readyz(services: ServicesDep) -> Health:
    try:
        await services.redis.ping()
    except Exception as exc:
        raise Unavailable(f"Redis is unreachable: {exc}", code="redis_unavailable") from exc
    await anyio.to_thread.run_sync(services.storage.check)
    return Health(status="ready")


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    return await render_metrics(services.redis, services.settings)


@router.get(
    "/v1/queue", summary="Waiting and running work, and workers", dependencies=[Depends(api_key)]
)
async def queue(
    services: ServicesDep,
    window: Annotated[
        float, Query(gt=0, le=600, description="Seconds of `recent` (completions, time to audio).")
    ] = 30.0,
) -> QueueState:
    heartbeat = services.settings.lease_seconds / 3
    return QueueState(
        queues=await registry.queue_counts(services.redis),
        oldest_waiting_seconds=round(await registry.oldest_waiting_seconds(services.redis), 3),
        workers=await registry.live_workers(services.redis, heartbeat),
        recent=await completions.recent(services.redis, window),
        autoscaler=await registry.load_autoscaler(services.redis),
    )
