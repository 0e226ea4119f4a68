"""The gateway: a thin FastAPI app that validates, queues and reports jobs.

It never synthesizes, and never blocks its event loop on Redis (asyncio
client) or on storage (boto3 calls run in threads).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import anyio
from fastapi import FastAPI
from redis import RedisError

from api import openapi
from api.deps import Services
from api.limits import BodySizeLimit
from api.observe import RequestObserver
from api.problems import install_problem_handlers
from api.routes import docs, fish_speech, jobs, openai_speech, playground, streams, system, voices
from shoal.api_keys import KeyRing
from shoal.audio_stream import AudioStreams
from shoal.deliveries import AsyncDeliveries
from shoal.errors import Unavailable
from shoal.logs import configure_logging, get_logger
from shoal.maintenance import run_maintenance
from shoal.rate_limit import RateLimiter
from shoal.redis_client import async_client
from shoal.settings import Settings, get_settings
from shoal.ssrf import Allowlist
from shoal.storage import Storage
from shoal.store import AsyncJobStore
from shoal.voice_store import AsyncVoiceStore

log = get_logger(__name__)
UPLOAD_LIMIT_BYTES = 25 << 20

DESCRIPTION = """
Queue-based text-to-speech. `POST /v1/jobs` queues a job and answers `202` at
once; poll `GET /v1/jobs/{id}` until `status` is `succeeded`, then fetch
`audio.url` (or follow `GET /v1/jobs/{id}/audio`). Errors are RFC 9457 problem
details with a stable `code`.
"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    client = async_client(settings)
    storage = await anyio.to_thread.run_sync(Storage, settings)
    try:
        await anyio.to_thread.run_sync(storage.ensure_bucket)
    except Unavailable as exc:  # /readyz reports it until storage comes back
        log.error("cannot prepare the audio bucket", error=exc.message)
    app.state.services = Services(
        settings,
        client,
        AsyncJobStore(client, settings),
        storage,
        AsyncDeliveries(client),
        Allowlist.parse(settings.webhook_allow_hosts, settings.webhook_ports),
        AsyncVoiceStore(client, storage),
        AudioStreams(settings.redis_url),
        KeyRing(client, settings.api_keys),
        RateLimiter(client, settings.rate_limit_per_minute),
    )
    try:
        if not await app.state.services.keyring.required():
            log.warning("authentication is off: no SHOAL_API_KEYS and no managed key")
    except RedisError:
        log.warning("authentication: cannot tell yet (Redis unreachable); checked per request")
    services: Services = app.state.services
    maintenance = asyncio.create_task(
        run_maintenance(services.store, storage, services.deliveries, settings)
    )
    try:
        yield
    finally:
        maintenance.cancel()
        with suppress(asyncio.CancelledError):
            await maintenance
        await services.streams.aclose()
        await client.aclose()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings, component="gateway")
    app = FastAPI(
        title="shoal",
        version="0.1.0",
        summary="Queue-based, asynchronous text-to-speech.",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url=None,  # served by api.openapi, true to this deployment's settings
        docs_url=None,  # served by api.routes.docs, from bundled assets: no CDN
        redoc_url=None,
    )
    app.state.settings = settings
    install_problem_handlers(app)
    routers = (jobs, streams, voices, fish_speech, openai_speech, system, openapi, docs, playground)
    for module in routers:
        app.include_router(module.router)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        # Voices, and Fish Speech requests with their reference recordings inline.
        path_limits={"/v1/voices": UPLOAD_LIMIT_BYTES, "/v1/tts": UPLOAD_LIMIT_BYTES},
    )
    app.add_middleware(RequestObserver)  # outermost: even a refused body gets an id
    docs.mount(app)
    playground.mount(app)
    return app
