"""Webhook deliveries in Redis: each event's record, its retries, disabled URLs.

The job store emits an event (a Celery message on the `webhooks` queue and a
`pending` record) in the same script that changes the job's state. From then
on this module owns the delivery record (`keys.delivery(job, event)`):

    pending ──2xx──▶ delivered
       │ ──timeout, connection error, 429, 5xx──▶ pending again, a retry scheduled
       │ ──other 4xx, redirect, refused address, retries used up──▶ failed
       └ ──410 Gone──▶ disabled (and the URL with it)

Retries wait in a sorted set scored by due time, not as Celery ETA tasks: the
Redis broker would redeliver an hours-long ETA task after its visibility
timeout, and a sorted set survives worker and Redis restarts (with AOF). The
gateway's maintenance loop moves due retries onto the queue.
"""

from __future__ import annotations

import time

import redis
import redis.asyncio as aredis

from shoal import keys
from shoal.queue import webhook_message
from shoal.webhooks import DeliveryState, WebhookEvent, WebhookSpec, WebhookStatus

# KEYS: scheduled zset, webhooks queue. ARGV: now, batch size. Returns how many moved.
_PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, message in ipairs(due) do
  redis.call('LPUSH', KEYS[2], message)
  redis.call('ZREM', KEYS[1], message)
end
return #due
"""
PROMOTE_BATCH = 500


def _optional_int(value: str | None) -> int | None:
    return int(value) if value else None


def _optional_float(value: str | None) -> float | None:
    return float(value) if value else None


def webhook_status(
    spec: WebhookSpec, event: WebhookEvent | None, record: dict[str, str]
) -> WebhookStatus:
    return WebhookStatus(
        url=spec.url,
        events=spec.events,
        event=event if record else None,
        state=DeliveryState(record["state"]) if record.get("state") else None,
        attempts=int(record.get("attempts") or 0),
        last_status_code=_optional_int(record.get("last_status_code")),
        last_error=record.get("last_error") or None,
        next_attempt_at=_optional_float(record.get("next_attempt_at")),
    )


class DeliveryLog:
    """The webhook worker's side (synchronous)."""

    def __init__(self, client: redis.Redis, retention_seconds: int) -> None:
        self.redis = client
        self.retention = retention_seconds

    def is_disabled(self, url: str) -> bool:
        return bool(self.redis.hexists(keys.WEBHOOKS_DISABLED, url))

    def disable(self, url: str) -> None:
        self.redis.hset(keys.WEBHOOKS_DISABLED, url, time.time())

    def started(self, job_id: str, event: str) -> None:
        """Count the attempt as in flight (KEDA reads the hash's length)."""
        self.redis.hset(keys.inflight(keys.WEBHOOK_QUEUE), f"{job_id}:{event}", time.time())

    def record(
        self,
        job_id: str,
        event: str,
        state: DeliveryState,
        status_code: int | None,
        error: str | None,
        retry: tuple[float, str] | None = None,  # (due time, webhook id) of the next attempt
        attempted: bool = True,
    ) -> None:
        """Record an attempt's outcome and, atomically, schedule the retry if any."""
        key = keys.delivery(job_id, event)
        fields: dict[str, str | int | float] = {
            "state": state.value,
            "last_status_code": status_code or "",
            "last_error": error or "",
            "next_attempt_at": retry[0] if retry else "",
        }
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
            pipe.hincrby(key, "attempts", 1 if attempted else 0)
            pipe.expire(key, self.retention)
            if retry is not None:
                due, webhook_id = retry
                pipe.zadd(
                    keys.WEBHOOKS_SCHEDULED, {webhook_message(job_id, event, webhook_id): due}
                )
            pipe.hdel(keys.inflight(keys.WEBHOOK_QUEUE), f"{job_id}:{event}")
            pipe.execute()

    def attempts(self, job_id: str, event: str) -> int:
        return int(self.redis.hget(keys.delivery(job_id, event), "attempts") or 0)

    def job_expires_in(self, job_id: str) -> float | None:
        """Seconds until the job record expires (None: gone); retries must come before."""
        ttl_ms = int(self.redis.pttl(keys.job(job_id)))
        if ttl_ms == -1:  # no expiry (never written by shoal): no bound
            return float("inf")
        return ttl_ms / 1000 if ttl_ms >= 0 else None


class AsyncDeliveries:
    """The gateway's side: job views, redelivery and promoting due retries."""

    def __init__(self, client: aredis.Redis) -> None:
        self.redis = client
        self._promote = client.register_script(_PROMOTE)

    async def status(
        self, job_id: str, spec: WebhookSpec, event: WebhookEvent | None
    ) -> WebhookStatus:
        record = await self.redis.hgetall(keys.delivery(job_id, event)) if event else {}
        return webhook_status(spec, event, record)  # type: ignore[arg-type]

    async def redeliver(self, job_id: str, event: WebhookEvent, url: str, retention: int) -> bool:
        """Send the event again now, with its original webhook id; False if none was sent."""
        key = keys.delivery(job_id, event)
        webhook_id = await self.redis.hget(key, "webhook_id")
        if not webhook_id:
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.WEBHOOKS_DISABLED, url)  # asking again re-enables a 410'd URL
            pipe.hset(
                key, mapping={"state": DeliveryState.PENDING.value, "next_attempt_at": time.time()}
            )
            pipe.expire(key, retention)
            pipe.lpush(keys.WEBHOOK_QUEUE, webhook_message(job_id, event, str(webhook_id)))
            await pipe.execute()
        return True

    async def prune_inflight(self, older_than_seconds: float) -> None:
        """Forget in-flight marks of attempts whose worker died mid-request."""
        inflight = keys.inflight(keys.WEBHOOK_QUEUE)
        horizon = time.time() - older_than_seconds
        marks = await self.redis.hgetall(inflight)
        stale = [name for name, started in marks.items() if float(started) < horizon]
        if stale:
            await self.redis.hdel(inflight, *stale)

    async def promote_due(self) -> int:
        moved = await self._promote(
            keys=[keys.WEBHOOKS_SCHEDULED, keys.WEBHOOK_QUEUE], args=[time.time(), PROMOTE_BATCH]
        )
        return int(moved)
