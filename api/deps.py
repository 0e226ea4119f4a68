"""What routes depend on, as `Annotated` aliases that tests can override."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated

import redis.asyncio as aredis
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shoal.api_keys import ANONYMOUS, KeyRing
from shoal.audio_stream import AudioStreams
from shoal.deliveries import AsyncDeliveries
from shoal.errors import Unauthorized
from shoal.rate_limit import RateLimiter
from shoal.registry import load_catalog
from shoal.settings import Settings
from shoal.ssrf import Allowlist
from shoal.storage import Storage
from shoal.store import AsyncJobStore
from shoal.voice_store import AsyncVoiceStore
from shoal.voices import Catalog

CATALOG_TTL_SECONDS = 5.0


@dataclass
class Services:
    """Created once in the app's lifespan; one per gateway process."""

    settings: Settings
    redis: aredis.Redis
    store: AsyncJobStore
    storage: Storage
    deliveries: AsyncDeliveries
    webhook_allow: Allowlist
    voices: AsyncVoiceStore
    streams: AudioStreams
    keyring: KeyRing
    rate_limiter: RateLimiter
    waiting: int = 0  # requests now holding a `Prefer: wait` in this process
    _catalog: tuple[float, Catalog | None] = field(default=(0.0, None))

    async def catalog(self) -> Catalog | None:
        """The engine's catalog as its workers published it, cached for a few seconds."""
        fetched_at, catalog = self._catalog
        if catalog is None or time.monotonic() - fetched_at > CATALOG_TTL_SECONDS:
            catalog = await load_catalog(self.redis, self.settings.engine)
            self._catalog = (time.monotonic(), catalog)
        return catalog


# Dependencies are `async def` although they await nothing: FastAPI runs a plain
# `def` dependency in a thread pool, a thread hop on every request.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]

_bearer = HTTPBearer(
    auto_error=False,
    description="An API key: one of SHOAL_API_KEYS, or one made by `shoal keys create`.",
)


async def api_key(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The caller's id (never the key itself); "anonymous" while authentication is off.

    401 on a missing, wrong or revoked key once keys are required.
    """
    keyring = services.keyring
    if not await keyring.required():
        return ANONYMOUS
    if credentials is None:
        raise Unauthorized("send an API key as 'Authorization: Bearer <key>'")
    caller = await keyring.caller(credentials.credentials)
    if caller is None:
        raise Unauthorized("the API key is not valid (wrong, or revoked)")
    return caller


CallerDep = Annotated[str, Depends(api_key)]
