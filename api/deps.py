"""What routes depend on, as `Annotated` aliases that tests can override."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import Annotated

import redis.asyncio as aredis
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shoal.audio_stream import AudioStreams
from shoal.deliveries import AsyncDeliveries
from shoal.errors import Unauthorized
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

_bearer = HTTPBearer(auto_error=False, description="An API key from SHOAL_API_KEYS.")


async def api_key(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The caller's identity ("anonymous" while auth is off); 401 on a missing or wrong key."""
    keys = services.settings.api_keys
    if not keys:
        return "anonymous"
    if credentials is None:
        raise Unauthorized("send an API key as 'Authorization: Bearer <key>'")
    offered = credentials.credentials.encode()
    for key in keys:
        if hmac.compare_digest(offered, key.encode()):
            # Scopes idempotency keys per client, without keeping the key itself.
            return hashlib.sha256(key.encode()).hexdigest()[:16]
    raise Unauthorized("the API key is not valid")


CallerDep = Annotated[str, Depends(api_key)]
