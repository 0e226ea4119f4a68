"""Periodic upkeep the gateway runs: lost jobs and messages, due retries, expired audio.

Every step is safe to run from several gateway replicas at once: each change
of a job's state is an atomic transition that only one caller wins.
"""

from __future__ import annotations

import asyncio
import time

import anyio
import redis.asyncio as aredis

from shoal import keys
from shoal.deliveries import AsyncDeliveries
from shoal.errors import Unavailable
from shoal.job_metrics import JOBS_FAILED, JOBS_REQUEUED
from shoal.jobs import JobError
from shoal.logs import bind_job, bind_request, get_logger
from shoal.settings import Settings
from shoal.storage import Storage
from shoal.store import AsyncJobStore

log = get_logger(__name__)
EXPIRY_BATCH = 500


async def recover_lost_jobs(store: AsyncJobStore, settings: Settings) -> int:
    """Requeue running jobs whose worker stopped renewing its lease, or fail them.

    A job past its timeout fails (`timeout`); one that already used every
    attempt fails (`worker_lost`); any other goes back to the queue now rather
    than after the broker's visibility timeout.
    """
    recovered = 0
    for job_id in await store.lost():
        record = await store.get(job_id)
        if record is None:
            await store.forget(job_id)
            continue
        token = record.lease_token or ""
        ran_for = time.time() - (record.started_at or record.created_at)
        error: JobError | None = None
        with bind_job(job_id), bind_request(record.request_id):
            if ran_for >= settings.job_timeout_seconds:
                error = JobError(
                    code="timeout",
                    message=f"the job ran longer than {settings.job_timeout_seconds:g} s; "
                    "shorten the text or raise SHOAL_JOB_TIMEOUT_SECONDS",
                )
                done = await store.fail_lost(job_id, token, error)
            elif record.attempts >= settings.max_attempts:
                error = JobError(
                    code="worker_lost",
                    message=f"the worker running this job stopped {record.attempts} times "
                    "(crash, out of memory or node loss); submit it again",
                )
                done = await store.fail_lost(job_id, token, error)
            else:
                done = await store.requeue_lost(job_id, token)
            if done.ok:
                recovered += 1
                counter = JOBS_FAILED.labels(error.code) if error else JOBS_REQUEUED.labels("lost")
                counter.inc()
                log.warning(
                    "lost job recovered", attempts=record.attempts, ran_for=round(ran_for, 1)
                )
    return recovered


async def recover_orphans(store: AsyncJobStore, settings: Settings) -> int:
    """Give a new message to each queued job that has none (seen twice, a sweep apart).

    A message vanishes when a worker dies between taking it and claiming its job
    (or between the broker's pop and its unacked record); the job is still queued,
    so the claim it never made can be made by another worker.
    """
    grace = max(settings.lease_seconds, 2 * settings.maintenance_interval_seconds)
    recovered = 0
    for job_id in await store.orphans(grace, settings.maintenance_interval_seconds):
        if await store.redispatch(job_id):
            recovered += 1
            JOBS_REQUEUED.labels("orphaned").inc()
            with bind_job(job_id):
                log.warning("queued job had lost its message; dispatched again")
    return recovered


async def expire_audio(client: aredis.Redis, storage: Storage) -> int:
    due: list[str] = await client.zrangebyscore(  # type: ignore[assignment]
        keys.AUDIO_EXPIRY, "-inf", time.time(), 0, EXPIRY_BATCH
    )
    if due:
        await anyio.to_thread.run_sync(storage.delete, due)
        await client.zrem(keys.AUDIO_EXPIRY, *due)
    return len(due)


async def prune_indexes(client: aredis.Redis, settings: Settings) -> None:
    """Drop index entries whose jobs or workers are long gone."""
    horizon = time.time() - settings.retention_seconds
    async with client.pipeline(transaction=False) as pipe:
        pipe.zremrangebyscore(keys.QUEUED, "-inf", horizon)
        pipe.zremrangebyscore(keys.WORKERS, "-inf", horizon)
        await pipe.execute()


async def run_maintenance(
    store: AsyncJobStore, storage: Storage, deliveries: AsyncDeliveries, settings: Settings
) -> None:
    """Forever, every `maintenance_interval_seconds`; errors are logged, never fatal."""
    while True:
        try:
            await recover_lost_jobs(store, settings)
            await recover_orphans(store, settings)
            await store.promote_due()
            await deliveries.promote_due()
            await deliveries.prune_inflight(4 * settings.webhook_timeout_seconds)
            await expire_audio(store.redis, storage)
            await prune_indexes(store.redis, settings)
        except Unavailable as exc:  # Redis or storage away: one line, not a traceback
            log.warning("maintenance skipped", reason=exc.message)
        except Exception:
            log.exception("maintenance step failed; retrying next interval")
        await asyncio.sleep(settings.maintenance_interval_seconds)
