"""Optional limits on a worker's life, for pods run by a KEDA ScaledJob.

A Job's pod must end once its work is done, or the Job never completes and
KEDA keeps counting it. `--max-jobs N` ends the worker after N jobs and
`--idle-exit S` after S seconds without starting one. Either ends it the way
Kubernetes would: SIGTERM to itself, Celery's warm shutdown, so the job that
just ran is acknowledged first and the process exits with code 0.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

from celery.signals import task_postrun, task_prerun, worker_ready

from shoal.logs import get_logger

log = get_logger(__name__)


class Lifetime:
    def __init__(self, max_jobs: int = 0, idle_exit_seconds: float = 0.0) -> None:
        self.max_jobs = max_jobs
        self.idle_exit_seconds = idle_exit_seconds
        self.jobs_done = 0
        self._busy = 0  # jobs running now (one per slot)
        self._last_activity = time.monotonic()
        self._stopping = False
        self._lock = threading.Lock()

    def install(self) -> None:
        """Connect to the worker's signals; call before the worker starts."""
        task_prerun.connect(self._started, weak=False)
        task_postrun.connect(self._finished, weak=False)
        if self.idle_exit_seconds:
            worker_ready.connect(self._ready, weak=False)

    def _ready(self, **_: Any) -> None:
        self._last_activity = time.monotonic()  # loading the engine is not idling
        threading.Thread(target=self._watch_idle, name="shoal-idle-exit", daemon=True).start()

    def _started(self, **_: Any) -> None:
        with self._lock:
            self._busy += 1

    def _finished(self, **_: Any) -> None:
        with self._lock:
            self._busy -= 1
            self._last_activity = time.monotonic()
            self.jobs_done += 1
            done = self.max_jobs and self.jobs_done >= self.max_jobs
        if done:
            self._stop("max_jobs", jobs=self.jobs_done)

    def _watch_idle(self) -> None:
        interval = min(1.0, self.idle_exit_seconds / 4)
        while not self._stopping:
            time.sleep(interval)
            with self._lock:
                idle = 0.0 if self._busy else time.monotonic() - self._last_activity
            if idle >= self.idle_exit_seconds:
                self._stop("idle", seconds=round(idle, 1))

    def _stop(self, reason: str, **fields: Any) -> None:
        if self._stopping:
            return
        self._stopping = True
        log.info("worker leaving", reason=reason, **fields)
        # Celery's own SIGTERM handler: finish and acknowledge, then exit 0.
        os.kill(os.getpid(), signal.SIGTERM)
