"""The gateway's Redis client, with bounded timeouts, and Redis errors in shoal's terms.

A Redis that is down, stopped, partitioned away or out of memory must give a
client a clear 503 within seconds, never a request that hangs or a reply
blaming the wrong cause: every connect and every reply has a deadline
(`SHOAL_REDIS_TIMEOUT_SECONDS`), a dropped connection is retried once (a
restarted Redis is reconnected to by itself), and an out-of-memory refusal has
its own code. What a client reads never names Redis's address; the log does.
"""

from __future__ import annotations

import redis
import redis.asyncio as aredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from shoal.errors import Unavailable
from shoal.logs import get_logger
from shoal.settings import Settings

log = get_logger(__name__)
CONNECT_TIMEOUT_SECONDS = 2.0


def async_client(settings: Settings) -> aredis.Redis:
    timeout = settings.redis_timeout_seconds
    return aredis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=min(CONNECT_TIMEOUT_SECONDS, timeout),
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), retries=1),
        health_check_interval=30,
    )


def as_unavailable(exc: redis.RedisError) -> Unavailable:
    """The 503 for a Redis error: out of memory, or unreachable."""
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return Unavailable(
            "the job store is out of memory (Redis maxmemory) and refuses writes; nothing "
            "was written: retry later (operators: raise maxmemory, or shorten retention)",
            code="redis_out_of_memory",
            retry_after=30,
        )
    log.warning("Redis error", error=f"{type(exc).__name__}: {exc}")
    return Unavailable(
        "the job store (Redis) is unreachable or too slow to answer; retry in a few seconds",
        code="redis_unavailable",
    )
