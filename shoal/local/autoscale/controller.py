"""The local autoscaler's loop: read what KEDA reads, decide, resize the pool, publish.

Each sync it counts every trigger's key with KEDA's own Lua script (LLEN for
the list `tts`, HLEN for the hash `shoal:inflight:tts`, SCARD/ZCARD for sets),
asks `keda.decide`, starts or retires workers, and publishes its state in
Redis (`shoal:autoscaler:tts`) for `GET /v1/queue`, the gateway's metrics and
`shoal watch`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from shoal import keys
from shoal.local.autoscale.keda import HPA_SYNC_SECONDS, Decision, Observation, State, decide
from shoal.local.autoscale.scaledobject import ScalingSpec
from shoal.local.pool import WorkerPool
from shoal.logs import get_logger
from shoal.registry import AutoscalerStatus, WorkerInfo, publish_autoscaler

log = get_logger(__name__)
# KEDA's Redis scaler (pkg/scalers/redis_scaler.go): the length of whatever the key is.
COUNT_SCRIPT = """
local listType = redis.call('type', KEYS[1]).ok
if listType == 'zset' then return redis.call('zcard', KEYS[1])
elseif listType == 'set' then return redis.call('scard', KEYS[1])
elseif listType == 'hash' then return redis.call('hlen', KEYS[1])
elseif listType == 'list' or listType == 'none' then return redis.call('llen', KEYS[1])
else return redis.error_reply('ERR unsupported key type: ' .. listType) end
"""


class Autoscaler:
    def __init__(
        self,
        spec: ScalingSpec,
        pool: WorkerPool,
        client: redis.Redis,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.file_spec = spec  # targets per slot, as written
        self.spec = spec
        self.pool = pool
        self.redis = client
        self.clock = clock
        self.state = State(created=clock())
        self.interval = min(spec.polling_interval, HPA_SYNC_SECONDS)
        self._count = client.register_script(COUNT_SCRIPT)
        self._due = 0.0
        self._ready = 0

    def tick(self) -> Decision | None:
        """Decide once a sync is due; call it as often as you like."""
        now = self.clock()
        if now < self._due:
            return None
        self._due = now + self.interval
        counts = self._observe()
        observation = Observation(now, counts, self.pool.size, self._ready)
        decision = decide(self.spec, self.state, observation)
        self.state = decision.state
        before = self.pool.size
        if decision.replicas != before:
            try:
                retired = self.pool.scale_to(decision.replicas)
            except redis.RedisError as exc:  # which workers are busy is unknown: wait
                log.warning("autoscaler cannot see which workers are busy", error=str(exc))
                return decision
            log.info(
                "scaled the worker pool",
                replicas_before=before,
                replicas=decision.replicas,
                metric=decision.metric,
                retiring=retired,
                reason=decision.reason,
            )
        self._publish(decision, now)
        return decision

    def _observe(self) -> dict[str, float] | None:
        """The triggers' counts (None when Redis cannot be read), and the ready workers."""
        try:
            ready = self.pool.ready_names()
            self._follow_slots(ready)
            with self.redis.pipeline(transaction=False) as pipe:
                for trigger in self.spec.triggers:
                    self._count(keys=[trigger.key], client=pipe)
                replies = pipe.execute()
        except redis.RedisError as exc:
            log.warning("autoscaler cannot read its triggers", error=str(exc))
            return None
        self._ready = len(ready)
        return {t.name: float(n) for t, n in zip(self.spec.triggers, replies, strict=True)}

    def _follow_slots(self, ready: set[str]) -> None:
        """Targets follow the slots the workers registered (engine.slots)."""
        if not ready:
            return
        raws = self.redis.mget([keys.worker_info(name) for name in sorted(ready)])
        slots = max((WorkerInfo.model_validate_json(r).slots for r in raws if r), default=0)
        if slots and slots != self.spec.slots:
            self.spec = self.file_spec.per_worker(slots)
            log.info("targets follow the workers' slots", slots=slots)

    def _publish(self, decision: Decision, now: float) -> None:
        spec = self.spec
        target = spec.composite.target if spec.composite else spec.triggers[0].target
        retiring = self.pool.retiring()
        try:
            status = AutoscalerStatus(
                source=spec.source,
                desired=decision.replicas,
                current=self.pool.size + retiring,
                ready=len(self.pool.ready_names()),
                retiring=retiring,
                min_replicas=spec.min_replicas,
                max_replicas=spec.max_replicas,
                metric=decision.metric,
                target=target,
                slots=spec.slots,
                active=decision.active,
                reason=decision.reason,
                updated_at=now,
            )
            publish_autoscaler(self.redis, status, ttl_seconds=3 * self.interval + 5)
        except redis.RedisError as exc:
            log.warning("autoscaler cannot publish its state", error=str(exc))
