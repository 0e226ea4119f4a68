"""What a worker process loads once: engine, clients, heartbeat, runner."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

import httpx
import redis

from shoal import keys
from shoal.deliveries import DeliveryLog
from shoal.logs import get_logger
from shoal.registry import WorkerInfo, deregister_worker, register_worker
from shoal.settings import Settings, get_settings
from shoal.storage import Storage
from shoal.store import JobStore
from shoal.voice_store import VoiceStore
from shoal.webhooks import USER_AGENT
from worker import metrics
from worker.engines import Engine, load_engine
from worker.heartbeat import Heartbeat
from worker.synthesis import JobRunner
from worker.webhook_delivery import WebhookSender

log = get_logger(__name__)


@dataclass
class Runtime:
    name: str
    settings: Settings
    redis: redis.Redis
    heartbeat: Heartbeat
    runner: JobRunner | None  # None on a worker that only delivers webhooks
    engine: Engine | None
    webhooks: WebhookSender | None  # None on a synthesis worker

    @property
    def slots(self) -> int:
        """Messages this worker takes at once: its engine's slots, or webhook threads."""
        return self.engine.slots if self.engine else self.settings.webhook_concurrency


_runtime: Runtime | None = None


def default_name(queues: list[str]) -> str:
    return f"{'+'.join(queues)}-{os.getpid()}@{socket.gethostname()}"


def start_runtime(settings: Settings, name: str, queues: list[str]) -> Runtime:
    """Load what the queues need (an engine, a webhook sender), then announce the worker.

    Raises when it cannot start, before any message is consumed.
    """
    global _runtime
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    store = JobStore(client, settings)
    heartbeat = Heartbeat(store, client, settings, name)
    engine = runner = webhooks = None
    if keys.TTS_QUEUE in queues:
        storage = Storage(settings)
        voices = VoiceStore(client, storage)  # one store for the runner and the engine
        started = time.perf_counter()
        engine = load_engine(settings, voices)
        log.info(
            "engine loaded", engine=engine.name, seconds=round(time.perf_counter() - started, 2)
        )
        runner = JobRunner(store, storage, engine, heartbeat, settings, name, voices)
        metrics.observe_slots(engine.name, engine.slots, lambda: heartbeat.busy)
    if keys.WEBHOOK_QUEUE in queues:
        if not settings.webhook_secret:
            raise RuntimeError("SHOAL_WEBHOOK_SECRET is empty: webhooks cannot be signed")
        http = httpx.Client(headers={"user-agent": USER_AGENT}, trust_env=False)
        deliveries = DeliveryLog(client, settings.retention_seconds)
        webhooks = WebhookSender(store, deliveries, Storage(settings), settings, http)
    info = WorkerInfo(
        name=name,
        engine=engine.name if engine else None,
        queues=queues,
        pid=os.getpid(),
        started_at=time.time(),
        slots=engine.slots if engine else settings.webhook_concurrency,
    )
    register_worker(client, info, engine.catalog() if engine else None)
    heartbeat.start()
    _runtime = Runtime(name, settings, client, heartbeat, runner, engine, webhooks)
    return _runtime


def runtime() -> Runtime:
    """The process's runtime; started on first use under a plain `celery worker`."""
    if _runtime is None:
        return start_runtime(get_settings(), default_name([keys.TTS_QUEUE]), [keys.TTS_QUEUE])
    return _runtime


def stop_runtime() -> None:
    """Leave the worker list at once rather than after the heartbeats lapse."""
    if _runtime is not None:
        deregister_worker(_runtime.redis, _runtime.name)
