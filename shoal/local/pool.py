"""The synthesis workers of `shoal up`, added and retired at run time.

Scale-in asks a worker to leave with SIGTERM: Celery's warm shutdown finishes
the jobs it runs, and hands back any message it had reserved but not started.
Which one leaves follows the ReplicaSet's preference for what costs least:
one still starting, else an idle one (the in-flight hash maps each running job
to its worker), else the one running the fewest jobs; the newest first among
equals. So a busy worker is never picked while an idle one exists.
"""

from __future__ import annotations

import itertools
import socket
import time
from collections import Counter
from collections.abc import Callable

import redis

from shoal import keys
from shoal.local.processes import Managed, ProcessSpec, Supervisor
from shoal.logs import get_logger

log = get_logger(__name__)


class WorkerPool:
    def __init__(
        self,
        supervisor: Supervisor,
        make_spec: Callable[[str], ProcessSpec],
        client: redis.Redis,
        retire_timeout: float,
        seen_seconds: float,
    ) -> None:
        self.supervisor = supervisor
        self.make_spec = make_spec
        self.redis = client
        self.retire_timeout = retire_timeout
        self.seen_seconds = seen_seconds  # a worker heard from this recently is ready
        self.workers: list[Managed] = []  # not retiring, oldest first
        self._numbers = itertools.count(1)
        self._host = socket.gethostname()

    @property
    def size(self) -> int:
        return len(self.workers)

    @property
    def names(self) -> list[str]:
        return [w.spec.name for w in self.workers]

    def retiring(self) -> int:
        """Workers asked to leave that are still finishing their jobs."""
        return sum(1 for c in self.supervisor.children if c.retire_by is not None and c.alive())

    def ready_names(self) -> set[str]:
        """Workers of the pool that registered and heartbeat (a pod's readiness)."""
        seen = self.redis.zrangebyscore(keys.WORKERS, time.time() - self.seen_seconds, "+inf")
        return set(self.names) & {n.decode() if isinstance(n, bytes) else n for n in seen}

    def add(self) -> Managed:
        name = f"tts-{next(self._numbers)}@{self._host}"
        worker = self.supervisor.start(self.make_spec(name))
        self.workers.append(worker)
        return worker

    def scale_to(self, count: int) -> list[str]:
        """Start or retire workers until the pool has `count`; the names retired."""
        while self.size < count:
            self.add()
        if self.size <= count:
            return []
        leaving = self.choose_leavers(self.size - count)
        for worker in leaving:
            self.workers.remove(worker)
            self.supervisor.retire(worker, self.retire_timeout)
        return [w.spec.name for w in leaving]

    def choose_leavers(self, count: int) -> list[Managed]:
        running = Counter(
            v.decode() if isinstance(v, bytes) else v
            for v in self.redis.hvals(keys.inflight(keys.TTS_QUEUE))
        )
        ready = self.ready_names()
        age = {id(w): index for index, w in enumerate(self.workers)}

        def cost(worker: Managed) -> tuple[int, int, int]:
            name = worker.spec.name
            return (name in ready, running[name], -age[id(worker)])

        return sorted(self.workers, key=cost)[:count]
