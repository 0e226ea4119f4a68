"""Per-key submit rate limit: a token bucket in Redis, shared by every gateway replica.

Each caller (API key) has a bucket of `limit` tokens that refills at
`limit` per minute; a submit takes one token or is refused (429) with how
long until the next one. The bucket is read, refilled and taken from in one
Lua script, on Redis's clock, so concurrent submits through several gateways
never overdraw it. A bucket left alone expires once it would be full again.

The gateway sends the IETF draft's headers (draft-ietf-httpapi-ratelimit-headers,
the three-field form): `RateLimit-Limit` (submits per window), `RateLimit-Remaining`
(submits that could be made now), `RateLimit-Reset` (seconds until the bucket
is full again), and `RateLimit-Policy: <limit>;w=60`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import redis
import redis.asyncio as aredis

from shoal import keys
from shoal.errors import TooManyRequests
from shoal.redis_client import as_unavailable

WINDOW_SECONDS = 60

# KEYS: the bucket. ARGV: capacity, refill per millisecond.
# Returns {taken (1/0), tokens left, ms until the next token, ms until full}.
_TAKE = """
local capacity, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(bucket[1]) or capacity
local at = tonumber(bucket[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local taken = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
end
local until_full = math.ceil((capacity - tokens) / rate)
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], until_full + 1000)
local until_next = 0
if tokens < 1 then until_next = math.ceil((1 - tokens) / rate) end
return {taken, tostring(tokens), until_next, until_full}
"""


@dataclass(frozen=True)
class Quota:
    """Where a caller's bucket stands after a submit, as response headers."""

    limit: int
    remaining: int
    reset_seconds: int
    retry_after_seconds: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
            "RateLimit-Policy": f"{self.limit};w={WINDOW_SECONDS}",
        }


class RateLimiter:
    """`limit` submits per minute per caller; 0 turns it off."""

    def __init__(self, client: aredis.Redis, limit: int) -> None:
        self.limit = limit
        self._take = client.register_script(_TAKE)

    async def take(self, caller: str) -> Quota | None:
        """Take a token for `caller`: its quota, None when off; TooManyRequests when empty."""
        if self.limit <= 0:
            return None
        rate = self.limit / (WINDOW_SECONDS * 1000)
        try:
            taken, tokens, until_next, until_full = await self._take(
                keys=[keys.rate_limit(caller)], args=[self.limit, rate]
            )
        except redis.RedisError as exc:
            raise as_unavailable(exc) from exc
        quota = Quota(
            limit=self.limit,
            remaining=math.floor(float(tokens)),
            reset_seconds=math.ceil(int(until_full) / 1000),
            retry_after_seconds=max(1, math.ceil(int(until_next) / 1000)),
        )
        if not int(taken):
            raise TooManyRequests(
                f"this API key may submit {self.limit} jobs a minute; "
                f"the next submit is possible in {quota.retry_after_seconds} s",
                code="rate_limited",
                retry_after=quota.retry_after_seconds,
                headers=quota.headers(),
            )
        return quota
