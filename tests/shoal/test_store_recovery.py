"""The job store where failures meet it: leases renewed late, lost messages, delayed
requeues, canceled messages, admission caps, idempotency over a job's whole life and
Redis out of memory. On a real redis-server."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import redis
import redis.asyncio as aredis

from shoal import keys
from shoal.errors import Conflict, TooManyRequests, Unavailable
from shoal.jobs import AudioFormat, JobRequest, JobStatus, StoredAudio
from shoal.settings import Settings
from shoal.store import AsyncJobStore, JobStore
from tests.conftest import private_redis

T = TypeVar("T")


def _async(settings: Settings, action: Callable[[AsyncJobStore], Awaitable[T]]) -> T:
    async def go() -> T:
        client = aredis.Redis.from_url(settings.redis_url, decode_responses=True)
        try:
            return await action(AsyncJobStore(client, settings))
        finally:
            await client.aclose()

    return asyncio.run(go())


def _create(
    settings: Settings, owner: str = "tests", key: str | None = None, hold: float = 0.0
) -> str:
    async def action(store: AsyncJobStore) -> str:
        return (await store.create(JobRequest(text="Hi"), owner, key, hold)).job_id

    return _async(settings, action)


@pytest.fixture
def store(settings: Settings, sync_redis: redis.Redis) -> JobStore:
    return JobStore(sync_redis, settings)


def test_a_late_renewal_keeps_the_job_from_being_requeued(
    settings: Settings, store: JobStore
) -> None:
    job_id = _create(settings)
    _, token, _ = store.claim(job_id, "paused")
    store.redis.delete(keys.lease(job_id))  # the worker was paused past its lease
    assert _async(settings, lambda s: s.lost()) == [job_id]
    assert store.renew(job_id, token)  # ... and renews before maintenance acts
    requeued = _async(settings, lambda s: s.requeue_lost(job_id, token))
    assert (requeued.result, requeued.previous) == ("leased", "running")
    record = store.get(job_id)
    assert record is not None and record.status is JobStatus.RUNNING and record.attempts == 1
    # A lease that is really gone is requeued.
    store.redis.delete(keys.lease(job_id))
    assert _async(settings, lambda s: s.requeue_lost(job_id, token)).ok


def test_canceling_a_queued_job_takes_its_message_out_of_the_queue(
    settings: Settings, store: JobStore, sync_redis: redis.Redis
) -> None:
    keep, cancel = _create(settings), _create(settings)
    assert sync_redis.llen(keys.TTS_QUEUE) == 2
    assert _async(settings, lambda s: s.cancel(cancel)).ok
    messages = sync_redis.lrange(keys.TTS_QUEUE, 0, -1)
    assert [json.loads(m)["headers"]["argsrepr"] for m in messages] == [repr((keep,))]


def test_a_delayed_requeue_waits_out_of_the_queue_until_due(
    settings: Settings, store: JobStore, sync_redis: redis.Redis
) -> None:
    job_id = _create(settings)
    sync_redis.delete(keys.TTS_QUEUE)  # taken by the worker
    _, token, _ = store.claim(job_id, "w1")
    assert store.requeue(job_id, token, time.time() + 0.5).ok
    record = store.get(job_id)
    assert record is not None and record.status is JobStatus.QUEUED
    assert sync_redis.llen(keys.TTS_QUEUE) == 0  # not counted as work KEDA could start
    assert sync_redis.zcard(keys.TTS_SCHEDULED) == 1
    assert _async(settings, lambda s: s.promote_due()) == 0
    time.sleep(0.6)
    assert _async(settings, lambda s: s.promote_due()) == 1
    assert sync_redis.llen(keys.TTS_QUEUE) == 1 and sync_redis.zcard(keys.TTS_SCHEDULED) == 0
    assert store.claim(job_id, "w2")[0].ok
    # Canceling a delayed job removes its scheduled message too.
    other = _create(settings)
    sync_redis.delete(keys.TTS_QUEUE)
    _, token, _ = store.claim(other, "w1")
    store.requeue(other, token, time.time() + 60)
    assert _async(settings, lambda s: s.cancel(other)).ok
    assert sync_redis.zcard(keys.TTS_SCHEDULED) == 0


def _sweep(settings: Settings, grace: float = 0.0, confirm: float = 0.2) -> list[str]:
    return _async(settings, lambda s: s.orphans(grace, confirm))


def test_a_queued_job_whose_message_vanished_gets_a_new_one(
    settings: Settings, store: JobStore, sync_redis: redis.Redis
) -> None:
    lost, waiting = _create(settings), _create(settings)
    vanished = sync_redis.rpop(keys.TTS_QUEUE)  # the oldest: popped, then the worker died
    assert vanished is not None and repr((lost,)) in vanished
    assert _sweep(settings) == []  # seen once: could be between the pop and its unacked record
    time.sleep(0.25)
    assert _sweep(settings) == [lost]  # seen twice, a sweep apart: it is gone
    assert _async(settings, lambda s: s.redispatch(lost))
    messages = sync_redis.lrange(keys.TTS_QUEUE, 0, -1)
    assert sorted(json.loads(m)["headers"]["argsrepr"] for m in messages) == sorted(
        [repr((lost,)), repr((waiting,))]
    )
    time.sleep(0.25)
    assert _sweep(settings) == []  # both have their message now
    assert store.claim(lost, "w1")[0].ok


def test_a_message_a_live_worker_holds_is_not_an_orphan_but_a_stale_one_is(
    settings: Settings, store: JobStore, sync_redis: redis.Redis
) -> None:
    job_id = _create(settings)
    raw = sync_redis.rpop(keys.TTS_QUEUE)
    assert isinstance(raw, str | bytes)
    tag = json.loads(raw)["properties"]["delivery_tag"]
    # What kombu writes when a worker takes a message (acks_late).
    sync_redis.hset(keys.BROKER_UNACKED, tag, json.dumps([raw, "tts", "tts"]))
    sync_redis.zadd(keys.BROKER_UNACKED_INDEX, {tag: time.time()})
    for _ in range(2):
        assert _sweep(settings, grace=30) == []
        time.sleep(0.25)
    # Held for longer than any live worker takes to claim: its worker died first.
    sync_redis.zadd(keys.BROKER_UNACKED_INDEX, {tag: time.time() - 60})
    sync_redis.zadd(keys.QUEUED, {job_id: time.time() - 60})
    assert _sweep(settings, grace=30) == []
    time.sleep(0.25)
    assert _sweep(settings, grace=30) == [job_id]


def test_a_claimed_or_delayed_job_is_never_an_orphan(
    settings: Settings, store: JobStore, sync_redis: redis.Redis
) -> None:
    claimed, delayed = _create(settings), _create(settings)
    sync_redis.delete(keys.TTS_QUEUE)
    store.claim(claimed, "w1")
    _, token, _ = store.claim(delayed, "w1")
    store.requeue(delayed, token, time.time() + 60)
    for _ in range(2):
        assert _sweep(settings) == []
        time.sleep(0.25)


def test_redispatch_does_nothing_once_the_job_moved_on(
    settings: Settings, store: JobStore, sync_redis: redis.Redis
) -> None:
    job_id = _create(settings)
    sync_redis.delete(keys.TTS_QUEUE)
    store.claim(job_id, "w1")
    assert not _async(settings, lambda s: s.redispatch(job_id))
    assert sync_redis.llen(keys.TTS_QUEUE) == 0


def test_past_the_queue_cap_a_submit_writes_nothing(
    env_settings: Callable[..., Settings], sync_redis: redis.Redis
) -> None:
    settings = env_settings(SHOAL_MAX_QUEUED="2")
    _create(settings), _create(settings)
    with pytest.raises(Unavailable) as refused:
        _create(settings)
    assert refused.value.code == "queue_full" and (refused.value.retry_after or 0) > 0
    assert sync_redis.llen(keys.TTS_QUEUE) == 2
    assert len(sync_redis.keys(keys.job("*"))) == 2


def test_the_per_key_cap_stops_one_key_not_the_others(
    env_settings: Callable[..., Settings], sync_redis: redis.Redis
) -> None:
    settings = env_settings(SHOAL_MAX_QUEUED_PER_KEY="2")
    first = _create(settings, owner="greedy")
    _create(settings, owner="greedy")
    with pytest.raises(TooManyRequests) as refused:
        _create(settings, owner="greedy")
    assert refused.value.code == "too_many_queued"
    _create(settings, owner="modest")  # another key is not affected
    # Canceling frees a place too.
    cancel = _create(settings, owner="modest")
    assert _async(settings, lambda s: s.cancel(cancel)).ok
    assert sync_redis.zcard(keys.queued_by("modest")) == 1
    # Once one of its jobs runs, the key may queue another.
    sync_redis.delete(keys.TTS_QUEUE)
    assert JobStore(sync_redis, settings).claim(first, "w1")[0].ok
    _create(settings, owner="greedy")


def test_an_idempotency_key_lives_as_long_as_its_job(
    settings: Settings, store: JobStore, sync_redis: redis.Redis
) -> None:
    job_id = _create(settings, key="order-7")
    idem = keys.idempotency("tests", hashlib.sha256(b"order-7").hexdigest())
    sync_redis.expire(idem, 5)  # a transition refreshes it with the job's retention
    assert store.claim(job_id, "w1")[0].ok
    assert sync_redis.ttl(idem) > 5
    assert sync_redis.ttl(idem) == sync_redis.ttl(keys.job(job_id))
    # Once the job is gone, the key is free again: a replay makes a new job, not a 404.
    sync_redis.delete(keys.job(job_id))
    again = _create(settings, key="order-7")
    assert again != job_id and store.get(again) is not None
    assert _create(settings, key="order-7") == again


def test_a_replay_while_the_first_request_waits_is_in_progress(settings: Settings) -> None:
    job_id = _create(settings, key="slow", hold=30)
    with pytest.raises(Conflict) as busy:  # 409, as the IETF draft asks
        _create(settings, key="slow")
    assert busy.value.code == "idempotency_request_in_progress"
    assert busy.value.extra["job_id"] == job_id
    _async(settings, lambda s: s.settle("tests", "slow"))
    assert _create(settings, key="slow") == job_id


@pytest.fixture
def full_redis(tmp_path: Path) -> Iterator[redis.Redis]:
    with private_redis(tmp_path) as server:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        yield client
        client.close()


def test_redis_out_of_memory_is_a_clear_refusal_that_changes_nothing(
    env_settings: Callable[..., Settings], full_redis: redis.Redis
) -> None:
    port = full_redis.connection_pool.connection_kwargs["port"]
    settings = env_settings(SHOAL_REDIS_URL=f"redis://127.0.0.1:{port}/0")
    store = JobStore(full_redis, settings)
    queued = _create(settings)
    full_redis.config_set("maxmemory-policy", "noeviction")
    full_redis.config_set("maxmemory", "1")
    try:
        with pytest.raises(Unavailable) as refused:
            _create(settings)
        assert refused.value.code == "redis_out_of_memory"
        with pytest.raises(Unavailable):
            store.claim(queued, "w1")
        # The refused claim left the job exactly as it was: queued, indexed, its message kept.
        assert full_redis.hget(keys.job(queued), "status") == "queued"
        assert full_redis.zscore(keys.QUEUED, queued) is not None
        assert full_redis.llen(keys.TTS_QUEUE) == 1
    finally:
        full_redis.config_set("maxmemory", "0")
    assert store.claim(queued, "w1")[0].ok


def test_a_transition_retried_after_a_lost_reply_is_not_refused(
    settings: Settings, store: JobStore
) -> None:
    """redis-py retries a command whose reply was lost: the script then runs twice."""
    job_id = _create(settings)
    claim = store.commands.claim(job_id, "w1", "token-1")
    assert store._run(claim).ok
    assert store._run(claim).ok  # the replay, not a refused claim that would drop the job
    record = store.get(job_id)
    assert record is not None and record.attempts == 1
    done = store.commands.succeed(job_id, "token-1", _audio(job_id), time.time())
    assert store._run(done).ok
    assert store._run(done).ok  # not "refused": the worker keeps its audio
    # Someone else's call is still refused.
    other = store.commands.succeed(job_id, "token-2", _audio(job_id), time.time())
    assert store._run(other).result == "refused"


def test_a_create_retried_after_a_lost_reply_makes_one_job(
    settings: Settings, sync_redis: redis.Redis
) -> None:
    async def twice(store: AsyncJobStore) -> tuple[str, str]:
        call = store.commands.create(JobRequest(text="Hi"), "tests", None, 0.0)
        first, again = await store._run(call), await store._run(call)
        return first.job_id, again.job_id

    first, again = _async(settings, twice)
    assert first == again
    assert sync_redis.llen(keys.TTS_QUEUE) == 1


def _audio(job_id: str) -> StoredAudio:
    return StoredAudio(
        key=f"audio/{job_id}/1.wav",
        format=AudioFormat.WAV,
        sample_rate=22050,
        duration_seconds=1.0,
        bytes=100,
    )
