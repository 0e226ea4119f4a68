"""The job store's transitions, on a real redis-server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest
import redis
import redis.asyncio as aredis

from shoal import keys
from shoal.errors import InvalidRequest
from shoal.jobs import AudioFormat, JobError, JobRequest, JobStatus, StoredAudio
from shoal.settings import Settings
from shoal.store import AsyncJobStore, JobStore


@pytest.fixture
def store(settings: Settings, sync_redis: redis.Redis) -> JobStore:
    return JobStore(sync_redis, settings)


T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def _with_async_store(
    settings: Settings, action: Callable[[AsyncJobStore], Awaitable[T]]
) -> T:
    client = aredis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        return await action(AsyncJobStore(client, settings))
    finally:
        await client.aclose()


def create(settings: Settings, text: str = "Hello", key: str | None = None) -> str:
    async def action(astore: AsyncJobStore) -> str:
        created = await astore.create(JobRequest(text=text), "tests", key)
        return created.job_id

    return run(_with_async_store(settings, action))


def audio(job_id: str) -> StoredAudio:
    return StoredAudio(
        key=f"audio/{job_id}/1.wav",
        format=AudioFormat.WAV,
        sample_rate=22050,
        duration_seconds=1.0,
        bytes=100,
    )


@pytest.fixture
def job_id(settings: Settings) -> str:
    return create(settings)


def test_create_records_the_job_and_queues_one_message(
    settings: Settings, sync_redis: redis.Redis, store: JobStore
) -> None:
    job_id = create(settings, "Hello there")
    record = store.get(job_id)
    assert record is not None
    assert record.status is JobStatus.QUEUED
    assert record.input.text == "Hello there"
    assert record.attempts == 0
    assert job_id.startswith("job_") and len(job_id) >= 26
    messages = sync_redis.lrange(keys.TTS_QUEUE, 0, -1)
    assert len(messages) == 1
    assert json.loads(messages[0])["headers"]["argsrepr"] == repr((job_id,))
    assert sync_redis.zscore(keys.QUEUED, job_id) is not None
    assert 0 < sync_redis.ttl(keys.job(job_id)) <= settings.retention_seconds


def test_claim_then_succeed(store: JobStore, job_id: str, sync_redis: redis.Redis) -> None:
    claimed, token, running = store.claim(job_id, "w1")
    assert claimed.ok
    assert running == store.get(job_id)  # the claim returns the job as claimed
    assert running is not None
    assert running.status is JobStatus.RUNNING and running.attempts == 1
    assert running.started_at is not None and running.worker == "w1"
    assert sync_redis.hget(keys.inflight(keys.TTS_QUEUE), job_id) == "w1"
    assert sync_redis.zscore(keys.QUEUED, job_id) is None
    assert sync_redis.exists(keys.lease(job_id))

    assert store.succeed(job_id, token, audio(job_id), time.time()).ok
    done = store.get(job_id)
    assert done is not None and done.status is JobStatus.SUCCEEDED
    assert done.audio == audio(job_id)
    assert done.finished_at is not None and done.finished_at >= running.started_at
    assert not sync_redis.hexists(keys.inflight(keys.TTS_QUEUE), job_id)
    assert not sync_redis.exists(keys.lease(job_id))
    assert sync_redis.zscore(keys.AUDIO_EXPIRY, audio(job_id).key) is not None


def test_a_job_is_claimed_once(store: JobStore, job_id: str) -> None:
    assert store.claim(job_id, "w1")[0].ok
    second, _, record = store.claim(job_id, "w2")
    assert (second.result, second.previous) == ("refused", "running")
    assert record is None


def test_a_finished_job_never_runs_again(store: JobStore, job_id: str) -> None:
    _, token, _ = store.claim(job_id, "w1")
    assert store.succeed(job_id, token, audio(job_id), time.time()).ok
    again, _, _ = store.claim(job_id, "w2")
    assert (again.result, again.previous) == ("refused", "succeeded")
    assert not store.requeue(job_id, token).ok
    assert not store.fail(job_id, token, JobError(code="x", message="y")).ok
    record = store.get(job_id)
    assert record is not None and record.status is JobStatus.SUCCEEDED and record.attempts == 1


def test_a_stale_worker_cannot_finish_a_job_it_lost(store: JobStore, job_id: str) -> None:
    _, old_token, _ = store.claim(job_id, "w1")
    assert store.requeue(job_id, old_token).ok  # lease lost: back in the queue
    _, new_token, _ = store.claim(job_id, "w2")
    stale = store.succeed(job_id, old_token, audio(job_id), time.time())
    assert (stale.result, stale.previous) == ("stale", "running")
    assert not store.renew(job_id, old_token)
    assert store.renew(job_id, new_token)
    assert store.succeed(job_id, new_token, audio(job_id), time.time()).ok
    record = store.get(job_id)
    assert record is not None and record.attempts == 2 and record.worker == "w2"


def test_fail_records_the_reason(store: JobStore, job_id: str) -> None:
    _, token, _ = store.claim(job_id, "w1")
    error = JobError(code="no_speech", message="the text produced no speech")
    assert store.fail(job_id, token, error).ok
    record = store.get(job_id)
    assert record is not None and record.status is JobStatus.FAILED and record.error == error


def test_requeue_pushes_a_new_message(
    store: JobStore, job_id: str, sync_redis: redis.Redis
) -> None:
    sync_redis.delete(keys.TTS_QUEUE)  # as if the worker had taken it
    _, token, _ = store.claim(job_id, "w1")
    assert store.requeue(job_id, token).ok
    record = store.get(job_id)
    assert record is not None and record.status is JobStatus.QUEUED
    assert record.lease_token is None and record.worker is None
    assert sync_redis.llen(keys.TTS_QUEUE) == 1
    assert not sync_redis.hexists(keys.inflight(keys.TTS_QUEUE), job_id)


def test_cancel_queued_and_running_but_not_finished(settings: Settings, store: JobStore) -> None:
    queued, running, finished = create(settings), create(settings), create(settings)
    _, running_token, _ = store.claim(running, "w1")
    _, finished_token, _ = store.claim(finished, "w2")
    store.succeed(finished, finished_token, audio(finished), time.time())

    async def cancel_all(astore: AsyncJobStore) -> list[str]:
        return [(await astore.cancel(j)).result for j in (queued, running, finished, "job_nope")]

    assert run(_with_async_store(settings, cancel_all)) == ["ok", "ok", "refused", "missing"]
    for job_id in (queued, running):
        record = store.get(job_id)
        assert record is not None and record.status is JobStatus.CANCELED
    # The worker that was running it finds out and cannot record a result.
    assert not store.renew(running, running_token)
    assert not store.succeed(running, running_token, audio(running), time.time()).ok


def test_lost_lists_running_jobs_whose_lease_expired(settings: Settings, store: JobStore) -> None:
    alive, dead = create(settings), create(settings)
    store.claim(alive, "w1")
    store.claim(dead, "w2")
    store.redis.delete(keys.lease(dead))  # as if its worker had stopped renewing

    async def lost(astore: AsyncJobStore) -> list[str]:
        return await astore.lost()

    assert run(_with_async_store(settings, lost)) == [dead]


def test_lease_expires_without_renewal(settings: Settings, store: JobStore, job_id: str) -> None:
    store.claim(job_id, "w1")
    ttl_ms = store.redis.pttl(keys.lease(job_id))
    assert 0 < ttl_ms <= settings.lease_seconds * 1000


def test_idempotency_key_returns_the_same_job(settings: Settings, sync_redis: redis.Redis) -> None:
    first = create(settings, "Same", key="order-1")
    again = create(settings, "Same", key="order-1")
    assert first == again
    assert sync_redis.llen(keys.TTS_QUEUE) == 1  # queued once
    with pytest.raises(InvalidRequest) as raised:  # 422, as the IETF draft asks
        create(settings, "Different", key="order-1")
    assert raised.value.code == "idempotency_key_reused"
    assert create(settings, "Same", key="order-2") != first


def test_wait_returns_when_the_job_finishes(
    settings: Settings, store: JobStore, job_id: str
) -> None:
    _, token, _ = store.claim(job_id, "w1")

    async def wait_and_finish(astore: AsyncJobStore) -> tuple[str, float]:
        async def finish() -> None:
            await asyncio.sleep(0.3)
            await asyncio.to_thread(store.succeed, job_id, token, audio(job_id), time.time())

        started = time.monotonic()
        finisher = asyncio.create_task(finish())
        record = await astore.wait(job_id, seconds=10)
        await finisher
        assert record is not None
        return record.status, time.monotonic() - started

    status, waited = run(_with_async_store(settings, wait_and_finish))
    assert status == "succeeded"
    assert waited < 5


def test_wait_times_out_with_the_job_as_it_stands(settings: Settings, job_id: str) -> None:
    async def wait(astore: AsyncJobStore) -> str:
        record = await astore.wait(job_id, seconds=0.2)
        assert record is not None
        return record.status

    assert run(_with_async_store(settings, wait)) == "queued"
