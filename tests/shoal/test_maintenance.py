"""The gateway's upkeep: lost jobs requeued or failed, expired audio deleted."""

from __future__ import annotations

import asyncio
import time

import redis
import redis.asyncio as aredis
from prometheus_client import REGISTRY

from shoal import keys
from shoal.jobs import JobRequest, JobStatus
from shoal.maintenance import expire_audio, recover_lost_jobs
from shoal.settings import Settings
from shoal.storage import Storage
from shoal.store import AsyncJobStore, JobStore


def _lose(settings: Settings, sync_redis: redis.Redis, attempts: int, started_ago: float) -> str:
    """A running job whose worker vanished: its lease key is gone."""

    async def create() -> str:
        client = aredis.Redis.from_url(settings.redis_url, decode_responses=True)
        created = await AsyncJobStore(client, settings).create(JobRequest(text="Hi"))
        await client.aclose()
        return created.job_id

    job_id = asyncio.run(create())
    JobStore(sync_redis, settings).claim(job_id, "gone")
    sync_redis.hset(
        keys.job(job_id), mapping={"attempts": attempts, "started_at": time.time() - started_ago}
    )
    sync_redis.delete(keys.lease(job_id))
    return job_id


def _recover(settings: Settings) -> int:
    async def go() -> int:
        client = aredis.Redis.from_url(settings.redis_url, decode_responses=True)
        try:
            return await recover_lost_jobs(AsyncJobStore(client, settings), settings)
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_lost_jobs_are_requeued_then_failed(settings: Settings, sync_redis: redis.Redis) -> None:
    store = JobStore(sync_redis, settings)
    retry = _lose(settings, sync_redis, attempts=1, started_ago=1)
    exhausted = _lose(settings, sync_redis, attempts=settings.max_attempts, started_ago=1)
    too_long = _lose(settings, sync_redis, attempts=1, started_ago=settings.job_timeout_seconds + 1)
    sync_redis.delete(keys.TTS_QUEUE)

    assert _recover(settings) == 3
    requeued = store.get(retry)
    assert requeued is not None and requeued.status is JobStatus.QUEUED
    assert sync_redis.llen(keys.TTS_QUEUE) == 1
    failed = store.get(exhausted)
    assert failed is not None and failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.code == "worker_lost"
    timed_out = store.get(too_long)
    assert timed_out is not None and timed_out.error is not None
    assert timed_out.error.code == "timeout"
    assert _recover(settings) == 0  # nothing left to do
    assert sync_redis.hlen(keys.inflight(keys.TTS_QUEUE)) == 0


def test_a_live_lease_is_left_alone(settings: Settings, sync_redis: redis.Redis) -> None:
    job_id = _lose(settings, sync_redis, attempts=1, started_ago=1)
    sync_redis.set(keys.lease(job_id), "token", px=10_000)
    assert _recover(settings) == 0
    record = JobStore(sync_redis, settings).get(job_id)
    assert record is not None and record.status is JobStatus.RUNNING


def test_expired_audio_is_deleted(settings: Settings, sync_redis: redis.Redis) -> None:
    storage = Storage(settings)
    storage.ensure_bucket()
    storage.put("audio/job_old/1.wav", b"old", "audio/wav")
    storage.put("audio/job_new/1.wav", b"new", "audio/wav")
    sync_redis.zadd(
        keys.AUDIO_EXPIRY,
        {"audio/job_old/1.wav": time.time() - 1, "audio/job_new/1.wav": time.time() + 3600},
    )

    async def go() -> int:
        client = aredis.Redis.from_url(settings.redis_url, decode_responses=True)
        try:
            return await expire_audio(client, storage)
        finally:
            await client.aclose()

    assert asyncio.run(go()) == 1
    assert storage.get("audio/job_new/1.wav") == b"new"
    listed = storage._client.list_objects_v2(Bucket=settings.s3_bucket, Prefix="audio/job_old/")
    assert listed.get("KeyCount", 0) == 0
    assert sync_redis.zcard(keys.AUDIO_EXPIRY) == 1


def test_recoveries_are_counted_once_by_what_happened(
    settings: Settings, sync_redis: redis.Redis
) -> None:
    def count(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (
        count("shoal_jobs_requeued_total", reason="lost"),
        count("shoal_jobs_failed_total", code="worker_lost"),
        count("shoal_jobs_failed_total", code="timeout"),
    )
    _lose(settings, sync_redis, attempts=1, started_ago=1)
    _lose(settings, sync_redis, attempts=settings.max_attempts, started_ago=1)
    _lose(settings, sync_redis, attempts=1, started_ago=settings.job_timeout_seconds + 1)
    assert _recover(settings) == 3
    assert _recover(settings) == 0  # a second pass finds nothing and counts nothing
    after = (
        count("shoal_jobs_requeued_total", reason="lost"),
        count("shoal_jobs_failed_total", code="worker_lost"),
        count("shoal_jobs_failed_total", code="timeout"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]
