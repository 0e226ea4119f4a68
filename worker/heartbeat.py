"""The worker's heartbeat: it keeps the worker listed and its running jobs' leases alive.

One daemon thread per worker process, however many jobs the process runs at
once (one per slot). Every third of `lease_seconds` it renews each running
job's lease; a job that was canceled or taken over gets its stop flag raised,
which the engine polls. A job that outlives `job_timeout_seconds` is asked to
stop and is no longer renewed; an engine that hangs anyway loses the lease, and
the gateway fails the job with `timeout`.
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
        self._running: dict[str, RunningJob] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="shoal-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def busy(self) -> int:
        """Jobs running in this process now."""
        return len(self._running)

    @contextmanager
    def job(self, job_id: str, token: str, started: float) -> Iterator[RunningJob]:
        """While inside, the job's lease is renewed; `should_stop` turns True if it is lost."""
        running = RunningJob(job_id, token, started + self.settings.job_timeout_seconds)
        with self._lock:
            self._running[job_id] = running
        try:
            yield running
        finally:
            with self._lock:
                self._running.pop(job_id, None)

    def _loop(self) -> None:
        while True:
            try:
                self._beat()
            except Exception as exc:  # Redis away: leases may lapse; those jobs are requeued
                log.warning("heartbeat failed", error=str(exc))
            time.sleep(self.interval)

    def _beat(self) -> None:
        with self._lock:
            running = list(self._running.values())
        now = time.time()
        if all(now < job.deadline + self.settings.lease_seconds for job in running):
            # Liveness: a job stuck past its timeout (and the grace to stop) stops this,
            # so the orchestrator restarts a worker whose engine hangs.
            self.settings.worker_alive_file.touch()
        heartbeat_worker(self.redis, self.worker)
        live = [job for job in running if not job.should_stop()]
        for job in live:
            if now > job.deadline:
                job.stop("timeout")
        renewing = [job for job in live if not job.should_stop()]
        if renewing:
            held = self.store.renew_many([(job.job_id, job.token) for job in renewing])
            for job, ours in zip(renewing, held, strict=True):
                if not ours:
                    job.stop("lost")
