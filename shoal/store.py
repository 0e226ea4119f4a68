"""The job store: the only code that changes a job's state.

A job is a Redis hash (`keys.job`). Every change of state is one Lua script run
by Redis atomically, together with the indexes that follow from it:

    queued ──claim──▶ running ──succeed/fail──▶ succeeded | failed
      ▲                 │
      └────requeue──────┘   (worker lost or a transient error; attempts left)
    queued | running ──cancel──▶ canceled

- Entering `queued` pushes the Celery message in the same script, so a job is
  never recorded without its message or queued twice by one transition.
- `running` carries a lease: a token on the job and a key with a TTL that the
  worker renews. A job whose lease key expired has lost its worker; the
  gateway's maintenance loop requeues it. Finishing requires the worker's
  token, so a worker that lost its lease cannot overwrite the new run.
- Terminal states are final; Redis time stamps every transition.
- Arriving in `running` or a terminal state emits the matching webhook event
  (`job.started`, `job.succeeded`, ...) in the same script, when the job's
  webhook subscribes to it: its delivery message and a `pending` record.

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

from shoal import keys
from shoal.errors import Conflict, Unavailable
from shoal.jobs import JobError, JobRecord, JobRequest, JobStatus, StoredAudio, new_job_id
from shoal.queue import synthesize_message, webhook_message
from shoal.settings import Settings
from shoal.store_scripts import CREATE, LOST, RENEW, TRANSITION
from shoal.webhooks import WebhookEvent, WebhookSpec, new_webhook_id

T = TypeVar("T")

# The webhook event each state's arrival emits (to jobs that subscribed to it).
EVENT_FOR_STATUS = {
    JobStatus.RUNNING: WebhookEvent.STARTED,
    JobStatus.SUCCEEDED: WebhookEvent.SUCCEEDED,
    JobStatus.FAILED: WebhookEvent.FAILED,
    JobStatus.CANCELED: WebhookEvent.CANCELED,
}
_SCRIPTS = {"transition": TRANSITION, "create": CREATE, "renew": RENEW, "lost": LOST}
IDEMPOTENCY_TTL_SECONDS = 86_400


@dataclass(frozen=True)
class Transition:
    """What a transition did: `ok`, or why not (`missing`, `refused`, `stale`)."""

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
        worker: str = "",
        new_token: str = "",
        message: str = "",
        audio_key: str = "",
        audio_expires_at: float = 0,
        fields: dict[str, str] | None = None,
    ) -> _Call[Transition]:
        pairs = [item for pair in (fields or {}).items() for item in pair]
        event = EVENT_FOR_STATUS.get(to)
        webhook_id = new_webhook_id() if event else ""
        event_message = webhook_message(job_id, event, webhook_id) if event else ""
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
            ],
            [
                job_id,
                " ".join(allowed),
                to,
                token,
                worker,
                new_token,
                self.lease_ms,
                self.retention,
                message,
                audio_key,
                audio_expires_at,
                keys.done_channel(job_id),
                event or "",
                event_message,
                webhook_id,
                *pairs,
            ],
            _as_transition,
        )

    def create(
        self, request: JobRequest, scope: str, idempotency_key: str | None, request_id: str = ""
    ) -> _Call[Created]:
        job_id = new_job_id()
        job_input = request.job_input()
        fingerprint = ""
        idem_key = keys.idempotency(scope, "-")
        if idempotency_key is not None:
            digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
            idem_key = keys.idempotency(scope, digest)
            fingerprint = hashlib.sha256(request.model_dump_json().encode()).hexdigest()

        def parse(reply: Any) -> Created:
            if reply[0] == "exists" and reply[2] != fingerprint:
                raise Conflict(
                    "this Idempotency-Key was used with a different request body; "
                    "use a new key for a new job",
                    code="idempotency_key_reused",
                )
            if reply[0] != "created":
                return Created(str(reply[1]), None)
            record = JobRecord(
                id=job_id,
                status=JobStatus.QUEUED,
                input=job_input,
                metadata=request.metadata,
                created_at=float(reply[3]),
                webhook=request.webhook,
                request_id=request_id or None,
            )
            return Created(job_id, record)

        return _Call(
            "create",
            [keys.job(job_id), keys.QUEUED, keys.TTS_QUEUE, idem_key],
            [
                job_id,
                self.retention,
                synthesize_message(job_id),
                fingerprint,
                IDEMPOTENCY_TTL_SECONDS,
                "input",
                job_input.model_dump_json(),
                "metadata",
                json.dumps(request.metadata),
                "request_id",
                request_id,
                *_webhook_fields(request.webhook),
            ],
            parse,
        )

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

    def fail(self, job_id: str, error: JobError, token: str = "") -> _Call[Transition]:
        return self.transition(
            job_id,
            [JobStatus.RUNNING],
            JobStatus.FAILED,
            token=token,
            fields={"error": error.model_dump_json()},
        )

    def requeue(self, job_id: str, token: str) -> _Call[Transition]:
        return self.transition(
            job_id,
            [JobStatus.RUNNING],
            JobStatus.QUEUED,
            token=token,
            message=synthesize_message(job_id),
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


def _webhook_fields(webhook: WebhookSpec | None) -> list[str]:
    if webhook is None:
        return []
    # `webhook_events` lets the transition script test a subscription without JSON.
    return ["webhook", webhook.model_dump_json(), "webhook_events", " ".join(webhook.events)]


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
            raise Unavailable(f"Redis is unreachable: {exc}", code="redis_unavailable") from exc
        return call.parse(reply)

    def get(self, job_id: str) -> JobRecord | None:
        return _record(self.redis.hgetall(keys.job(job_id)))  # type: ignore[arg-type]

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
            raise Unavailable(f"Redis is unreachable: {exc}", code="redis_unavailable") from exc
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
            raise Unavailable(f"Redis is unreachable: {exc}", code="redis_unavailable") from exc
        return [call.parse(reply) for call, reply in zip(calls, replies, strict=True)]

    def succeed(self, job_id: str, token: str, audio: StoredAudio, now: float) -> Transition:
        return self._run(self.commands.succeed(job_id, token, audio, now))

    def fail(self, job_id: str, token: str, error: JobError) -> Transition:
        return self._run(self.commands.fail(job_id, error, token))

    def requeue(self, job_id: str, token: str) -> Transition:
        return self._run(self.commands.requeue(job_id, token))


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
            raise Unavailable(f"Redis is unreachable: {exc}", code="redis_unavailable") from exc
        return call.parse(reply)

    async def get(self, job_id: str) -> JobRecord | None:
        try:
            return _record(await self.redis.hgetall(keys.job(job_id)))  # type: ignore[arg-type]
        except redis.RedisError as exc:
            raise Unavailable(f"Redis is unreachable: {exc}", code="redis_unavailable") from exc

    async def create(
        self,
        request: JobRequest,
        scope: str = "anonymous",
        idempotency_key: str | None = None,
        *,
        request_id: str = "",
    ) -> Created:
        return await self._run(self.commands.create(request, scope, idempotency_key, request_id))

    async def cancel(self, job_id: str) -> Transition:
        return await self._run(self.commands.cancel(job_id))

    async def lost(self) -> list[str]:
        return await self._run(self.commands.lost())

    async def requeue(self, job_id: str, token: str) -> Transition:
        return await self._run(self.commands.requeue(job_id, token))

    async def fail(self, job_id: str, token: str, error: JobError) -> Transition:
        return await self._run(self.commands.fail(job_id, error, token))

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
