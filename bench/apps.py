"""The apps the gateway benchmark compares, each served by one uvicorn process.

- `shoal_with_noop`: shoal's real gateway plus POST /bench/noop, which returns a
  constant: the same app, middleware and server, minus the work (the ceiling),
  and POST /bench/validate, which also parses and validates the job body.
- `naive`: the design shoal avoids: a sync route that writes the record with
  blocking redis-py and calls Celery's `.delay()` (FastAPI runs it in a thread).
"""

from __future__ import annotations

import time
from typing import Any

import redis
from celery import Celery
from fastapi import FastAPI, Request

from api.main import create_app
from shoal import keys
from shoal.jobs import JobRequest, new_job_id
from shoal.settings import get_settings


def shoal_with_noop() -> FastAPI:
    app = create_app()

    @app.post("/bench/noop", status_code=202, include_in_schema=False)
    async def noop(_: Request) -> dict[str, str]:
        return {"id": "job_noop", "status": "queued"}

    @app.post("/bench/validate", status_code=202, include_in_schema=False)
    async def validate(body: JobRequest) -> dict[str, str]:
        return {"id": "job_noop", "status": "queued"}

    return app


def naive() -> FastAPI:
    settings = get_settings()
    celery = Celery("naive", broker=settings.redis_url)
    celery.conf.task_routes = {keys.SYNTHESIZE_TASK: {"queue": keys.TTS_QUEUE}}
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)

    @celery.task(name=keys.SYNTHESIZE_TASK)
    def synthesize(job_id: str) -> None: ...

    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/jobs", status_code=202)
    def submit(body: JobRequest) -> dict[str, Any]:
        job_id = new_job_id()
        client.hset(
            keys.job(job_id),
            mapping={"id": job_id, "status": "queued", "created_at": time.time(),
                     "input": body.job_input().model_dump_json()},
        )  # fmt: skip
        synthesize.delay(job_id)
        return {"id": job_id, "status": "queued"}

    return app
