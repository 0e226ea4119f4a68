"""The job store: the only code that changes a job's state.

A job is a Redis hash (`keys.job`). Every change of state is one Lua script run
by Redis atomically (`shoal.store_scripts`), together with the indexes that
follow from it:

    queued ──claim──▶ running ──succeed/fail──▶ succeeded | failed
      ▲                 │
      └────requeue──────┘   (worker lost, or a transient error: maybe after a delay)
    queued | running ──cancel──▶ canceled

- Entering `queued` pushes the Celery message in the same script (or schedules
  it, for a delayed requeue), and the job keeps that message and its delivery
  tag, so a job is never recorded without its message: maintenance finds a
  queued job whose message is gone anyway (`orphans`) and gives it a new one,
  and a canceled job's message leaves the list KEDA counts.
- `running` carries a lease: a token on the job and a key with a TTL that the
  worker renews. A job whose lease key expired has lost its worker; the
  gateway's maintenance loop requeues it, if the lease is still gone at that
  instant. Finishing requires the worker's token, so a worker that lost its
  lease cannot overwrite the new run.
- Terminal states are final; Redis time stamps every transition.
- Arriving in a terminal state appends the job to the completions stream
  (`shoal.completions`: completions per second, time to audio).
- Arriving in `running` or a terminal state emits the matching webhook event
  (`job.started`, `job.succeeded`, ...) in the same script, when the job's
  webhook subscribes to it: its delivery message and a `pending` record.
- Admission caps (waiting jobs in all, and per owner) are checked in the
  script that creates the job: a refused submit writes nothing.

The gateway uses `AsyncJobStore`, the worker `JobStore`; both run the same
`_Call`s built by `_Commands`, so the logic exists once.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anyio
import redis
import redis.asyncio as aredis

from shoal import completions, keys
from shoal.errors import Conflict, InvalidRequest, TooManyRequests, Unavailable
from shoal.jobs import JobError, JobRecord, JobRequest, JobStatus, StoredAudio, new_job_id
from shoal.queue import synthesize_message, webhook_message
from shoal.redis_client import as_unavailable
from shoal.settings import Settings
from shoal.store_scripts import (
    CREATE,
    LOST,
    ORPHANS,
    PROMOTE,
    REDISPATCH,
    RENEW,
    SETTLE,
    TRANSITION,
)
from shoal.webhooks import WebhookEvent, WebhookSpec, new_webhook_id

T = TypeVar("T")

# The webhook event each state's arrival emits (to jobs that subscribed to it).
EVENT_FOR_STATUS = {
    JobStatus.RUNNING: WebhookEvent.STARTED,
    JobStatus.SUCCEEDED: WebhookEvent.SUCCEEDED,
    JobStatus.FAILED: WebhookEvent.FAILED,
    JobStatus.CANCELED: WebhookEvent.CANCELED,
}
_SCRIPTS = {
    "transition": TRANSITION,
    "create": CREATE,
    "settle": SETTLE,
    "renew": RENEW,
    "lost": LOST,
    "orphans": ORPHANS,
    "redispatch": REDISPATCH,
    "promote": PROMOTE,
}
# Orphan sweep: how many of the oldest queued jobs one sweep looks at.
ORPHAN_BATCH = 200
PROMOTE_BATCH = 500
# Seconds Retry-After suggests when the queue is full: about one drain of a busy pool.
QUEUE_FULL_RETRY_SECONDS = 30


@dataclass(frozen=True)
class Transition:
    """What a transition did: `ok`, or why not (`missing`, `refused`, `stale`, `leased`)."""

    result: str
    previous: str

    @property
    def ok(self) -> bool:
        return self.result == "ok"


@dataclass(frozen=True)
class Created:
    job_id: str
    # The new job as written (no read-back needed); None when an earlier request
    # with the same Idempotency-Key made the job.
    record: JobRecord | None


@dataclass(frozen=True)
class _Call(Generic[T]):
    script: str
    keys: list[str]
    args: list[str | int | float]
    parse: Callable[[Any], T]


def _as_transition(reply: Any) -> Transition:
    return Transition(str(reply[0]), str(reply[1]))


def _idempotency_key(owner: str, idempotency_key: str | None) -> str:
    if idempotency_key is None:
        return ""
    return keys.idempotency(owner, hashlib.sha256(idempotency_key.encode()).hexdigest())


class _Commands:
    """Builds the script calls; the stores below only execute them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.retention = settings.retention_seconds
        self.lease_ms = int(settings.lease_seconds * 1000)

    def transition(
        self,
        job_id: str,
        allowed: Iterable[JobStatus],
        to: JobStatus,
        *,
        token: str = "",
        lease_gone: bool = False,
        worker: str = "",
        new_token: str = "",
        not_before: float = 0.0,
        audio_key: str = "",
        audio_expires_at: float = 0,
        fields: dict[str, str] | None = None,
    ) -> _Call[Transition]:
        event = EVENT_FOR_STATUS.get(to)
        webhook_id = new_webhook_id() if event else ""
        message = synthesize_message(job_id) if to is JobStatus.QUEUED else None
        named = {
            "id": job_id,
            "from": " ".join(allowed),
            "to": to.value,
            "token": token,
            "lease_gone": lease_gone,
            "worker": worker,
            "new_token": new_token,
            "lease_ms": self.lease_ms,
            "retention": self.retention,
            "message": message.body if message else "",
            "tag": message.tag if message else "",
            "not_before": not_before,
            "audio_key": audio_key,
            "audio_expires_at": audio_expires_at,
            "channel": keys.done_channel(job_id),
            "event": event or "",
            "event_message": webhook_message(job_id, event, webhook_id) if event else "",
            "webhook_id": webhook_id,
            "owner_prefix": keys.queued_by(""),
            "count_owner": self.settings.max_queued_per_key > 0,
            "completions_max": completions.MAX_ENTRIES,
            "set": fields or {},
        }
        return _Call(
            "transition",
            [
                keys.job(job_id),
                keys.lease(job_id),
                keys.inflight(keys.TTS_QUEUE),
                keys.QUEUED,
                keys.AUDIO_EXPIRY,
                keys.TTS_QUEUE,
                keys.WEBHOOK_QUEUE,
                keys.delivery(job_id, event or ""),
                keys.TTS_SCHEDULED,
                keys.COMPLETIONS,
            ],
            [json.dumps(named)],
            _as_transition,
        )

    def create(
        self,
        request: JobRequest,
        owner: str,
        idempotency_key: str | None,
        hold: float,
        request_id: str = "",
    ) -> _Call[Created]:
        job_id = new_job_id()
        job_input = request.job_input()
        message = synthesize_message(job_id)
        fingerprint = ""
        if idempotency_key is not None:  # what a replay must match
            fingerprint = hashlib.sha256(request.model_dump_json().encode()).hexdigest()
        fields = {
            "input": job_input.model_dump_json(),
            "metadata": json.dumps(request.metadata),
            "owner": owner,
            "request_id": request_id,
            **_webhook_fields(request.webhook),
        }
        named = {
            "id": job_id,
            "retention": self.retention,
            "message": message.body,
            "tag": message.tag,
            "fingerprint": fingerprint,
            "hold": hold,
            "max_queued": self.settings.max_queued,
            "owner_max_queued": self.settings.max_queued_per_key,
            "job_prefix": keys.job(""),
            "fields": fields,
        }

        def parse(reply: Any) -> Created:
            outcome = str(reply[0])
            if outcome == "created":
                record = JobRecord(
                    id=job_id,
                    status=JobStatus.QUEUED,
                    input=job_input,
                    metadata=request.metadata,
                    created_at=float(reply[2]),
                    webhook=request.webhook,
                    owner=owner,
                    request_id=request_id or None,
                )
                return Created(job_id, record)
            if outcome == "exists":
                return Created(str(reply[1]), None)
            raise _refusal(outcome, reply, self.settings)

        return _Call(
            "create",
            [
                keys.job(job_id),
                keys.QUEUED,
                keys.TTS_QUEUE,
                _idempotency_key(owner, idempotency_key),
                keys.queued_by(owner),
            ],
            [json.dumps(named)],
            parse,
        )

    def settle(self, owner: str, idempotency_key: str) -> _Call[None]:
        return _Call("settle", [_idempotency_key(owner, idempotency_key)], [], lambda _: None)

    def claim(self, job_id: str, worker: str, token: str) -> _Call[Transition]:
        return self.transition(
            job_id, [JobStatus.QUEUED], JobStatus.RUNNING, worker=worker, new_token=token
        )

    def renew(self, job_id: str, token: str) -> _Call[bool]:
        return _Call(
            "renew",
            [keys.job(job_id), keys.lease(job_id)],
            [token, self.lease_ms],
            lambda reply: reply == "ours",
        )

    def succeed(self, job_id: str, token: str, audio: StoredAudio, now: float) -> _Call[Transition]:
        return self.transition(
            job_id,
            [JobStatus.RUNNING],
            JobStatus.SUCCEEDED,
            token=token,
            audio_key=audio.key,
            audio_expires_at=now + self.retention,
            fields={"audio": audio.model_dump_json()},
        )

    def fail(
        self, job_id: str, error: JobError, token: str = "", lease_gone: bool = False
    ) -> _Call[Transition]:
        return self.transition(
            job_id,
            [JobStatus.RUNNING],
            JobStatus.FAILED,
            token=token,
            lease_gone=lease_gone,
            fields={"error": error.model_dump_json()},
        )

    def requeue(
        self, job_id: str, token: str, not_before: float = 0.0, lease_gone: bool = False
    ) -> _Call[Transition]:
        return self.transition(
            job_id,
            [JobStatus.RUNNING],
            JobStatus.QUEUED,
            token=token,
            lease_gone=lease_gone,
            not_before=not_before,
        )

    def cancel(self, job_id: str) -> _Call[Transition]:
        return self.transition(
            job_id,
            [JobStatus.QUEUED, JobStatus.RUNNING],
            JobStatus.CANCELED,
            fields={
                "error": JobError(code="canceled", message="canceled by request").model_dump_json()
            },
        )

    def lost(self) -> _Call[list[str]]:
        return _Call(
            "lost",
            [keys.inflight(keys.TTS_QUEUE)],
            [keys.lease("")],
            lambda reply: [str(job_id) for job_id in reply],
        )

    def orphans(self, grace: float, confirm: float) -> _Call[list[str]]:
        return _Call(
            "orphans",
            [
                keys.QUEUED,
                keys.TTS_QUEUE,
                keys.TTS_SCHEDULED,
                keys.BROKER_UNACKED,
                keys.BROKER_UNACKED_INDEX,
            ],
            [grace, ORPHAN_BATCH, confirm, keys.job("")],
            lambda reply: [str(job_id) for job_id in reply],
        )

    def redispatch(self, job_id: str, old_message: str) -> _Call[bool]:
        message = synthesize_message(job_id)
        return _Call(
            "redispatch",
            [keys.job(job_id), keys.TTS_QUEUE],
            [old_message, message.body, message.tag],
            lambda reply: bool(reply),
        )

    def promote_due(self) -> _Call[int]:
        return _Call(
            "promote", [keys.TTS_SCHEDULED, keys.TTS_QUEUE], [PROMOTE_BATCH], lambda n: int(n)
        )


def _refusal(outcome: str, reply: Any, settings: Settings) -> Exception:
    if outcome == "conflict":
        return InvalidRequest(
            "this Idempotency-Key was used with a different request body; "
            "use a new key for a new job",
            code="idempotency_key_reused",
        )
    if outcome == "in_progress":
        return Conflict(
            f"the request that made job {reply[1]} with this Idempotency-Key is still in "
            "progress; retry once it has answered",
            code="idempotency_request_in_progress",
            job_id=str(reply[1]),
        )
    if outcome == "queue_full":
        return Unavailable(
            f"{reply[1]} jobs are waiting, the most this server queues "
            f"(SHOAL_MAX_QUEUED={settings.max_queued}); retry later",
            code="queue_full",
            retry_after=QUEUE_FULL_RETRY_SECONDS,
        )
    if outcome == "owner_full":
        return TooManyRequests(
            f"this API key has {reply[1]} jobs waiting, the most one key may queue "
            f"(SHOAL_MAX_QUEUED_PER_KEY={settings.max_queued_per_key}); retry once some finish",
            code="too_many_queued",
            retry_after=QUEUE_FULL_RETRY_SECONDS,
        )
    return RuntimeError(f"unexpected reply from the create script: {reply!r}")


def _webhook_fields(webhook: WebhookSpec | None) -> dict[str, str]:
    if webhook is None:
        return {}
    # `webhook_events` lets the transition script test a subscription without JSON.
    return {"webhook": webhook.model_dump_json(), "webhook_events": " ".join(webhook.events)}


def _record(fields: dict[str, str]) -> JobRecord | None:
    return JobRecord.from_hash(fields) if fields else None


class JobStore:
    """The worker's side: synchronous redis-py."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.redis = client
        self.commands = _Commands(settings)
        self._scripts = {name: client.register_script(lua) for name, lua in _SCRIPTS.items()}

    def _run(self, call: _Call[T]) -> T:
        try:
            reply = self._scripts[call.script](keys=call.keys, args=call.args)
        except redis.RedisError as exc:
            raise as_unavailable(exc) from exc
        return call.parse(reply)

    def get(self, job_id: str) -> JobRecord | None:
        try:
            return _record(self.redis.hgetall(keys.job(job_id)))  # type: ignore[arg-type]
        except redis.RedisError as exc:
            raise as_unavailable(exc) from exc

    def claim(self, job_id: str, worker: str) -> tuple[Transition, str, JobRecord | None]:
        """Take a queued job: the transition, the lease token and the job as claimed.

        One round trip: the record is read in the same pipeline as the transition.
        """
        token = secrets.token_hex(8)
        call = self.commands.claim(job_id, worker, token)
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                self._scripts[call.script](keys=call.keys, args=call.args, client=pipe)
                pipe.hgetall(keys.job(job_id))
                reply, fields = pipe.execute()
        except redis.RedisError as exc:
            raise as_unavailable(exc) from exc
        transition = call.parse(reply)
        return transition, token, _record(fields) if transition.ok else None

    def renew(self, job_id: str, token: str) -> bool:
        return self._run(self.commands.renew(job_id, token))

    def renew_many(self, leases: list[tuple[str, str]]) -> list[bool]:
        """Renew several leases (job id, token) in one round trip; which are still ours."""
        calls = [self.commands.renew(job_id, token) for job_id, token in leases]
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                for call in calls:
                    self._scripts[call.script](keys=call.keys, args=call.args, client=pipe)
                replies = pipe.execute()
        except redis.RedisError as exc:
            raise as_unavailable(exc) from exc
        return [call.parse(reply) for call, reply in zip(calls, replies, strict=True)]

    def succeed(self, job_id: str, token: str, audio: StoredAudio, now: float) -> Transition:
        return self._run(self.commands.succeed(job_id, token, audio, now))

    def fail(self, job_id: str, token: str, error: JobError) -> Transition:
        return self._run(self.commands.fail(job_id, error, token))

    def requeue(self, job_id: str, token: str, not_before: float = 0.0) -> Transition:
        """Back to the queue now, or once `not_before` (epoch seconds) has passed."""
        return self._run(self.commands.requeue(job_id, token, not_before))


class AsyncJobStore:
    """The gateway's side: redis.asyncio, so the event loop never waits on Redis."""

    def __init__(self, client: aredis.Redis, settings: Settings) -> None:
        self.redis = client
        self.commands = _Commands(settings)
        self._scripts = {name: client.register_script(lua) for name, lua in _SCRIPTS.items()}

    async def _run(self, call: _Call[T]) -> T:
        try:
            reply = await self._scripts[call.script](keys=call.keys, args=call.args)
        except redis.RedisError as exc:
            raise as_unavailable(exc) from exc
        return call.parse(reply)

    async def get(self, job_id: str) -> JobRecord | None:
        try:
            return _record(await self.redis.hgetall(keys.job(job_id)))  # type: ignore[arg-type]
        except redis.RedisError as exc:
            raise as_unavailable(exc) from exc

    async def create(
        self,
        request: JobRequest,
        owner: str = "anonymous",
        idempotency_key: str | None = None,
        hold_seconds: float = 0.0,
        *,
        request_id: str = "",
    ) -> Created:
        """Queue a job for `owner`, or find the one this Idempotency-Key made.

        `hold_seconds`: how long this request may stay open (`Prefer: wait`); a replay
        meanwhile is "in progress" (409) until `settle` says it answered. `request_id`
        is kept with the job, for its logs.
        """
        call = self.commands.create(request, owner, idempotency_key, hold_seconds, request_id)
        return await self._run(call)

    async def settle(self, owner: str, idempotency_key: str) -> None:
        await self._run(self.commands.settle(owner, idempotency_key))

    async def cancel(self, job_id: str) -> Transition:
        return await self._run(self.commands.cancel(job_id))

    async def lost(self) -> list[str]:
        return await self._run(self.commands.lost())

    async def requeue_lost(self, job_id: str, token: str) -> Transition:
        """Requeue a job whose lease lapsed, if it is still lapsed now."""
        return await self._run(self.commands.requeue(job_id, token, lease_gone=True))

    async def fail_lost(self, job_id: str, token: str, error: JobError) -> Transition:
        """Fail a job whose lease lapsed, if it is still lapsed now."""
        return await self._run(self.commands.fail(job_id, error, token, lease_gone=True))

    async def orphans(self, grace: float, confirm: float) -> list[str]:
        return await self._run(self.commands.orphans(grace, confirm))

    async def redispatch(self, job_id: str) -> bool:
        """A new message for a queued job found without one; False if it moved on."""
        try:
            old = await self.redis.hget(keys.job(job_id), "message")
        except redis.RedisError as exc:
            raise as_unavailable(exc) from exc
        if not old:
            return False
        return await self._run(self.commands.redispatch(job_id, str(old)))

    async def promote_due(self) -> int:
        """Move delayed requeues whose time has come onto the queue."""
        return await self._run(self.commands.promote_due())

    async def forget(self, job_id: str) -> None:
        """Drop a running-index entry whose job record has expired."""
        await self.redis.hdel(keys.inflight(keys.TTS_QUEUE), job_id)

    async def wait(self, job_id: str, seconds: float) -> JobRecord | None:
        """The job once terminal, or as it stands after `seconds`."""
        async with self.redis.pubsub() as pubsub:
            await pubsub.subscribe(keys.done_channel(job_id))
            record = await self.get(job_id)
            if record is None or record.status.is_terminal or seconds <= 0:
                return record
            with anyio.move_on_after(seconds):
                while (
                    await pubsub.get_message(ignore_subscribe_messages=True, timeout=None) is None
                ):
                    pass
        return await self.get(job_id)
