"""Health, readiness, metrics and the queue's state."""

from __future__ import annotations

import hmac
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Query, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from redis import RedisError

from api.deps import ServicesDep, api_key
from api.metrics import render_metrics
from api.problems import problem_responses
from shoal import completions, registry
from shoal.errors import Unauthorized
from shoal.redis_client import as_unavailable
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
    except RedisError as exc:
        raise as_unavailable(exc) from exc
    await anyio.to_thread.run_sync(services.storage.check)
    return Health(status="ready")


_metrics_bearer = HTTPBearer(
    auto_error=False, scheme_name="MetricsToken", description="SHOAL_METRICS_TOKEN."
)


async def metrics_token(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_metrics_bearer)],
) -> None:
    """401 unless the scrape sends SHOAL_METRICS_TOKEN (when it is set)."""
    token = services.settings.metrics_token
    if token is None:
        return
    offered = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(offered.encode(), token.encode()):
        raise Unauthorized("send the metrics token as 'Authorization: Bearer <token>'")


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    dependencies=[Depends(metrics_token)],
    responses={200: {"content": {"text/plain": {}}}, 401: {}},
)
async def metrics(services: ServicesDep) -> Response:
    return await render_metrics(services.redis, services.settings)


@router.get(
    "/v1/queue",
    summary="Waiting and running work, and workers",
    dependencies=[Depends(api_key)],
    responses=problem_responses(401, 422, 503),
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
