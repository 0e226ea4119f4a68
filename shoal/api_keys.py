"""API keys: the static ones of SHOAL_API_KEYS and managed ones kept in Redis.

A managed key is made by `shoal keys create`, shown once, and stored only as
its SHA-256 (a key is 256 random bits: a slow hash would add nothing), with a
name and a creation time. The gateway looks the digest up on every request, so
`shoal keys revoke` takes effect at once on every replica.

Every key has a stable caller id, the identity jobs, voices, rate limits and
idempotency keys belong to; it never contains the key. A static key's id is
derived from the key (16 hex digits of its SHA-256: it survives restarts and
is the same on every replica), a managed key's is random (`key_...`).

Authentication is on when SHOAL_API_KEYS is set, or once a managed key has
been made (a flag that revoking keys never clears: revoking the last key
locks the API rather than opening it).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence

import redis
import redis.asyncio as aredis
from pydantic import BaseModel, Field

from shoal import keys

KEY_PREFIX = "shk_"
ANONYMOUS = "anonymous"
# A gateway that saw authentication off checks again after this long.
AUTH_FLAG_TTL_SECONDS = 1.0


class ManagedKey(BaseModel):
    """A managed key as `shoal keys list` shows it (the key itself is never kept)."""

    id: str = Field(examples=["key_7cW0kq1PzQ"])
    name: str
    created_at: float
    digest: str = Field(description="SHA-256 of the key, hex.")


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def static_caller(offered: str, static_keys: Sequence[str]) -> str | None:
    """The caller id of a static key (compared in constant time), or None."""
    found = None
    for key in static_keys:
        if hmac.compare_digest(offered.encode(), key.encode()):
            found = digest(key)[:16]
    return found


def create(client: redis.Redis, name: str) -> tuple[ManagedKey, str]:
    """Make a key: its record and the key itself, which is shown once and never stored."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ManagedKey(
        id="key_" + secrets.token_urlsafe(8), name=name, created_at=time.time(), digest=digest(key)
    )
    with client.pipeline(transaction=True) as pipe:
        pipe.hset(keys.API_KEYS, record.id, record.model_dump_json())
        pipe.set(keys.api_key(record.digest), record.id)
        pipe.set(keys.AUTH_REQUIRED, "1")
        pipe.execute()
    return record, key


def _load(raw: str) -> ManagedKey:
    return ManagedKey.model_validate_json(raw)


def list_keys(client: redis.Redis) -> list[ManagedKey]:
    raws: dict[str, str] = client.hgetall(keys.API_KEYS)  # type: ignore[assignment]
    return sorted((_load(raw) for raw in raws.values()), key=lambda k: k.created_at)


def revoke(client: redis.Redis, key_id: str) -> ManagedKey | None:
    """Delete a key: the next request that offers it is refused. None if there was none."""
    raw: str | None = client.hget(keys.API_KEYS, key_id)  # type: ignore[assignment]
    if raw is None:
        return None
    record = _load(raw)
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(keys.api_key(record.digest))
        pipe.hdel(keys.API_KEYS, key_id)
        pipe.execute()
    return record


class KeyRing:
    """The gateway's side: who offers a key, and whether one is required."""

    def __init__(self, client: aredis.Redis, static_keys: Sequence[str]) -> None:
        self.redis = client
        self.static_keys = list(static_keys)
        self._required_seen = bool(self.static_keys)
        self._checked_at = float("-inf")

    async def required(self) -> bool:
        """Whether callers must send a key (cached: once on, on for good)."""
        if self._required_seen:
            return True
        if time.monotonic() - self._checked_at > AUTH_FLAG_TTL_SECONDS:
            self._required_seen = bool(await self.redis.exists(keys.AUTH_REQUIRED))
            self._checked_at = time.monotonic()
        return self._required_seen

    async def caller(self, offered: str) -> str | None:
        """The caller id of a valid key, static or managed; None for any other."""
        static = static_caller(offered, self.static_keys)
        if static is not None:
            return static
        if not offered.startswith(KEY_PREFIX):
            return None
        key_id = await self.redis.get(keys.api_key(digest(offered)))
        return str(key_id) if key_id else None
