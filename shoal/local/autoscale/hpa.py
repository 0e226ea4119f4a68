"""The HorizontalPodAutoscaler's replica count, as kube-controller-manager computes it.

Ported from pkg/controller/podautoscaler (horizontal.go, replica_calculator.go)
for external metrics, the kind KEDA serves: a proposal per metric (AverageValue:
ceil(value / target) unless value / (target x current) is within the
tolerance; Value: ceil(value / target x ready)), the largest proposal, then
either the `behavior` rules (stabilization: the lowest recommendation of the
scale-up window and the highest of the scale-down window bound the change;
policies: replicas added or removed per period, Max or Min of the policies) or,
without `behavior`, the legacy rules (the highest recommendation of the last
300 s; at most max(2 x current, 4)). Pure functions: the state goes in and
comes out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from shoal.local.autoscale.scaledobject import (
    DEFAULT_DOWNSCALE_WINDOW,
    DEFAULT_TOLERANCE,
    Rules,
    ScalingSpec,
)

SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0

Timed = tuple[tuple[float, int], ...]  # (when, value), oldest first


@dataclass(frozen=True)
class Metric:
    """One metric as the HPA sees it: its value and its target."""

    value: float
    target: float
    metric_type: Literal["AverageValue", "Value"] = "AverageValue"


@dataclass(frozen=True)
class HpaState:
    recommendations: Timed = ()  # unstabilized proposals
    scale_up_events: Timed = ()  # replicas added
    scale_down_events: Timed = ()  # replicas removed


def _within(ratio: float, spec: ScalingSpec) -> bool:
    up = spec.behavior.up.tolerance if spec.behavior else DEFAULT_TOLERANCE
    down = spec.behavior.down.tolerance if spec.behavior else DEFAULT_TOLERANCE
    return 1.0 - down <= ratio <= 1.0 + up


def proposal(spec: ScalingSpec, metric: Metric, current: int, ready: int) -> int:
    """Replicas one external metric asks for (GetExternal[PerPod]MetricReplicas)."""
    if metric.metric_type == "AverageValue":
        ratio = metric.value / (metric.target * current)
        return current if _within(ratio, spec) else math.ceil(metric.value / metric.target)
    ratio = metric.value / metric.target
    if current == 0:
        return math.ceil(ratio)
    return current if _within(ratio, spec) else math.ceil(ratio * ready)


def step(
    spec: ScalingSpec, state: HpaState, now: float, current: int, metrics: list[Metric], ready: int
) -> tuple[int, HpaState, str]:
    """One HPA sync: (replicas, new state, reason). No metrics: nothing changes."""
    if current == 0 and spec.hpa_min != 0:
        return current, state, "scaling disabled at 0 replicas (KEDA activates)"
    if current > spec.max_replicas:
        desired, reason = spec.max_replicas, "above maxReplicaCount"
    elif current < spec.hpa_min:
        desired, reason = spec.hpa_min, "below minReplicaCount"
    elif not metrics:
        return current, state, "no metric (Redis unreadable)"
    else:
        wanted = max(proposal(spec, m, current, ready) for m in metrics)
        if spec.behavior is None:
            desired, state = _legacy(spec, state, now, current, wanted)
        else:
            desired, state = _with_behavior(spec, state, now, current, wanted)
        reason = f"metrics ask for {wanted}"
    if desired != current and spec.behavior is not None:
        state = _store_event(spec, state, now, current, desired)
    return desired, state, reason


def _record(recommendations: Timed, now: float, value: int, keep: float) -> Timed:
    """Add a recommendation, dropping those no window can see any more."""
    return (*((t, r) for t, r in recommendations if t > now - keep), (now, value))


def _legacy(
    spec: ScalingSpec, state: HpaState, now: float, current: int, wanted: int
) -> tuple[int, HpaState]:
    window = DEFAULT_DOWNSCALE_WINDOW
    stabilized = max([wanted, *(r for t, r in state.recommendations if t > now - window)])
    state = replace(state, recommendations=_record(state.recommendations, now, wanted, window))
    limit = int(max(SCALE_UP_LIMIT_FACTOR * current, SCALE_UP_LIMIT_MINIMUM))
    ceiling = min(spec.max_replicas, limit)
    return max(spec.hpa_min, min(stabilized, ceiling)), state


def _with_behavior(
    spec: ScalingSpec, state: HpaState, now: float, current: int, wanted: int
) -> tuple[int, HpaState]:
    assert spec.behavior is not None
    up, down = spec.behavior.up, spec.behavior.down
    up_bound, down_bound = wanted, wanted
    for when, recommended in state.recommendations:
        if when > now - up.window:
            up_bound = min(up_bound, recommended)
        if when > now - down.window:
            down_bound = max(down_bound, recommended)
    stabilized = min(max(current, up_bound), down_bound)
    keep = max(up.window, down.window)
    state = replace(state, recommendations=_record(state.recommendations, now, wanted, keep))
    return _rate_limited(spec, state, now, current, stabilized), state


def _changed(period: float, events: Timed, now: float) -> int:
    return sum(change for when, change in events if when > now - period)


def _rate_limited(
    spec: ScalingSpec, state: HpaState, now: float, current: int, desired: int
) -> int:
    assert spec.behavior is not None
    if desired > current:
        limit = _scale_up_limit(spec.behavior.up, state, now, current)
        return min(desired, spec.max_replicas, max(limit, current))
    if desired < current:
        limit = _scale_down_limit(spec.behavior.down, state, now, current)
        return max(desired, spec.hpa_min, min(limit, current))
    return desired


def _period_start(state: HpaState, period: float, now: float, current: int) -> int:
    added = _changed(period, state.scale_up_events, now)
    removed = _changed(period, state.scale_down_events, now)
    return current - added + removed


def _scale_up_limit(rules: Rules, state: HpaState, now: float, current: int) -> int:
    if rules.select == "Disabled":
        return current
    proposals = []
    for policy in rules.policies:
        start = _period_start(state, policy.period, now, current)
        if policy.kind == "Pods":
            proposals.append(start + policy.value)
        else:  # rounded up, or a small pool could never grow
            proposals.append(math.ceil(start * (1 + policy.value / 100)))
    return min(proposals) if rules.select == "Min" else max(proposals)


def _scale_down_limit(rules: Rules, state: HpaState, now: float, current: int) -> int:
    if rules.select == "Disabled":
        return current
    proposals = []
    for policy in rules.policies:
        start = _period_start(state, policy.period, now, current)
        if policy.kind == "Pods":
            proposals.append(start - policy.value)
        else:
            proposals.append(int(start * (1 - policy.value / 100)))
    # For scaling down, the smallest change is the highest count.
    return max(proposals) if rules.select == "Min" else min(proposals)


def _store_event(
    spec: ScalingSpec, state: HpaState, now: float, before: int, after: int
) -> HpaState:
    assert spec.behavior is not None
    # Events older than every policy period are never counted again.
    keep = max(spec.behavior.up.longest_period, spec.behavior.down.longest_period)
    if after > before:
        events = _record(state.scale_up_events, now, after - before, keep)
        return replace(state, scale_up_events=events)
    events = _record(state.scale_down_events, now, before - after, keep)
    return replace(state, scale_down_events=events)
