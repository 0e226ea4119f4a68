"""KEDA's part of a decision, and one tick of the whole stand-in.

KEDA's operator (pkg/scaling, v2.20) polls the triggers every pollingInterval.
With scalingModifiers the formula's value is the one metric, and the object is
active while that value is above activationTarget (without modifiers: while
any trigger is above its activationListLength). Active at 0 replicas: scale to
max(minReplicaCount, 1). Inactive with minReplicaCount 0: scale to 0 once
cooldownPeriod has passed since the object was last active (straight from any
count: the HPA's scale-down rules do not apply). Below minReplicaCount: up to
it. Everything between is the HPA's (`hpa.step`), which reads the same metric
each sync; after more than fallback.failureThreshold failed reads the metric
becomes target x fallback replicas, as KEDA's fallback does.

The HPA syncs every 15 s in a cluster; locally it syncs at every poll when the
poll is shorter, so a 2 s local profile reacts within 2 s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from shoal.local.autoscale import hpa
from shoal.local.autoscale.scaledobject import ScalingSpec

HPA_SYNC_SECONDS = 15.0  # kube-controller-manager's --horizontal-pod-autoscaler-sync-period


@dataclass(frozen=True)
class Observation:
    now: float
    counts: Mapping[str, float] | None  # trigger name -> LLEN/HLEN; None: Redis unreadable
    replicas: int  # workers the pool is meant to have (a Deployment's spec.replicas)
    ready: int  # of those, the ones registered and heartbeating


@dataclass(frozen=True)
class State:
    created: float
    last_active: float | None = None
    failures: int = 0  # consecutive failed reads (KEDA's health count, for the fallback)
    last_poll: float | None = None
    last_sync: float | None = None
    hpa: hpa.HpaState = field(default_factory=hpa.HpaState)


@dataclass(frozen=True)
class Decision:
    replicas: int
    state: State
    metric: float | None  # the formula's value (without modifiers: the largest trigger's)
    active: bool
    reason: str


def _metrics(spec: ScalingSpec, counts: Mapping[str, float]) -> list[hpa.Metric]:
    if spec.composite is not None:
        value = spec.composite.formula.evaluate(counts)
        return [hpa.Metric(value, spec.composite.target, spec.composite.metric_type)]
    return [hpa.Metric(counts[t.name], t.target, t.metric_type) for t in spec.triggers]


def is_active(spec: ScalingSpec, counts: Mapping[str, float]) -> bool:
    if spec.composite is not None:
        return spec.composite.formula.evaluate(counts) > spec.composite.activation
    return any(counts[t.name] > t.activation for t in spec.triggers)


def _fallback_metrics(spec: ScalingSpec, failures: int, current: int) -> list[hpa.Metric]:
    """KEDA's fallback: after too many failed reads, a metric that asks for its replicas."""
    fallback = spec.fallback
    if fallback is None or failures <= fallback.failure_threshold:
        return []
    replicas = {
        "currentReplicas": current,
        "currentReplicasIfHigher": max(current, fallback.replicas),
        "currentReplicasIfLower": min(current, fallback.replicas),
    }.get(fallback.behavior, fallback.replicas)
    target = spec.composite.target if spec.composite else spec.triggers[0].target
    return [hpa.Metric(target * replicas, target)]


def keda_poll(
    spec: ScalingSpec, state: State, obs: Observation, replicas: int
) -> tuple[int, State, bool, str]:
    """One poll of KEDA's scale loop: (replicas, state, active, reason)."""
    if obs.counts is None:  # an error: KEDA leaves the count to the HPA (and its fallback)
        return replicas, state, False, "triggers unreadable"
    if is_active(spec, obs.counts):
        state = replace(state, last_active=obs.now)
        if replicas == 0:
            return spec.hpa_min, state, True, "activated from zero"
        return replicas, state, True, "active"
    if replicas > 0 and spec.min_replicas == 0:
        since = state.last_active if state.last_active is not None else state.created
        wait = spec.cooldown if state.last_active is not None else spec.initial_cooldown
        if since + wait < obs.now:
            return 0, state, False, "cooldown over: scaled to zero"
        return replicas, state, False, "cooling down"
    if replicas < spec.min_replicas:
        return spec.min_replicas, state, False, "up to minReplicaCount"
    return replicas, state, False, "inactive"


def decide(spec: ScalingSpec, state: State, obs: Observation) -> Decision:
    """What the pool should have now, given what was observed (a pure function)."""
    replicas, active, reasons = obs.replicas, False, []
    failures = 0 if obs.counts is not None else state.failures + 1
    state = replace(state, failures=failures)
    if state.last_poll is None or obs.now - state.last_poll >= spec.polling_interval:
        replicas, state, active, why = keda_poll(
            spec, replace(state, last_poll=obs.now), obs, replicas
        )
        reasons.append(why)
    else:
        active = obs.counts is not None and is_active(spec, obs.counts)
    metrics = (
        _metrics(spec, obs.counts)
        if obs.counts is not None
        else _fallback_metrics(spec, failures, replicas)
    )
    metric = max((m.value for m in metrics), default=None)
    sync = min(spec.polling_interval, HPA_SYNC_SECONDS)
    if state.last_sync is None or obs.now - state.last_sync >= sync:
        replicas, hpa_state, why = hpa.step(spec, state.hpa, obs.now, replicas, metrics, obs.ready)
        state = replace(state, hpa=hpa_state, last_sync=obs.now)
        reasons.append(why)
    return Decision(replicas, state, metric, active, "; ".join(reasons))
