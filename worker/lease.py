"""The worker's heartbeat: it keeps the worker listed and the running job's lease alive.

One daemon thread per worker process. While a job runs it renews the job's
lease every third of `lease_seconds`; if the job was canceled or taken over it
raises the job's stop flag, which the engine polls. It stops renewing once the
job outlives `job_timeout_seconds` and asks it to stop; an engine that hangs
anyway loses its lease, and the gateway fails the job with `timeout`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import redis

from shoal.logs import get_logger
from shoal.registry import heartbeat_worker
from shoal.settings import Settings
from shoal.store import JobStore

log = get_logger(__name__)


@dataclass
class RunningJob:
    job_id: str
    token: str
    deadline: float
    # Why the job must stop: "timeout", or "lost" (canceled or taken over).
    stop_reason: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def stop(self, reason: str) -> None:
        self.stop_reason = reason
        self._stop.set()

    def should_stop(self) -> bool:
        return self._stop.is_set()


class Heartbeat:
    def __init__(self, store: JobStore, client: redis.Redis, settings: Settings, worker: str):
        self.store = store
        self.redis = client
        self.settings = settings
        self.worker = worker
        self.interval = settings.lease_seconds / 3
        self._running: RunningJob | None = None
        self._thread = threading.Thread(target=self._loop, name="shoal-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @contextmanager
    def job(self, job_id: str, token: str, started: float) -> Iterator[RunningJob]:
        """While inside, the job's lease is renewed; `should_stop` turns True if it is lost."""
        deadline = started + self.settings.job_timeout_seconds
        running = RunningJob(job_id, token, deadline)
        self._running = running
        try:
            yield running
        finally:
            self._running = None

    def _loop(self) -> None:
        while True:
            try:
                self._beat()
            except Exception as exc:  # Redis away: the lease may lapse; the job is requeued
                log.warning("heartbeat failed", error=str(exc))
            time.sleep(self.interval)

    def _beat(self) -> None:
        running = self._running
        if running is None or time.time() < running.deadline + self.settings.lease_seconds:
            # Liveness: a job stuck past its timeout (and the grace to stop) stops this,
            # so the orchestrator restarts a worker whose engine hangs.
            self.settings.worker_alive_file.touch()
        heartbeat_worker(self.redis, self.worker)
        if running is None or running.should_stop():
            return
        if time.time() > running.deadline:
            running.stop("timeout")
        elif not self.store.renew(running.job_id, running.token):
            running.stop("lost")
