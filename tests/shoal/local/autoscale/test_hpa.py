"""The HPA's replica count against cases worked by hand from the Kubernetes docs.

Every expected number below is computed in the comment beside it from the
rules in "Horizontal Pod Autoscaling" (kubernetes.io, algorithm details,
stabilization window, scaling policies) and the controller's source.
"""

from __future__ import annotations

import pytest

from shoal.local.autoscale.hpa import HpaState, Metric, proposal, step
from tests.shoal.local.autoscale.manifests import behavior, spec_of

LEGACY = spec_of()  # no `behavior`: the HPA's built-in rules
DEFAULTS = spec_of(advanced=behavior(scaleUp={}, scaleDown={}))  # behaviour, all defaults


@pytest.mark.parametrize(
    ("value", "current", "expected"),
    [
        (8, 2, 8),  # ratio 8 / (1 x 2) = 4: ceil(8 / 1) = 8
        (10.9, 10, 10),  # ratio 1.09 <= 1.1: within the tolerance, keep 10
        (11.5, 10, 12),  # ratio 1.15: ceil(11.5) = 12
        (9.0, 10, 10),  # ratio 0.90 >= 0.9: within, keep 10
        (8.9, 10, 9),  # ratio 0.89: ceil(8.9) = 9
        (0, 3, 0),  # nothing outstanding: ceil(0) = 0 (the minimum clamps it later)
    ],
)
def test_average_value_proposal_with_the_tolerance(
    value: float, current: int, expected: int
) -> None:
    assert proposal(LEGACY, Metric(value, 1.0), current, ready=current) == expected


def test_value_metric_scales_the_ready_pods() -> None:
    # Value: ratio = 20 / 5 = 4; desired = ceil(4 x 2 ready) = 8
    assert proposal(LEGACY, Metric(20, 5, "Value"), current=2, ready=2) == 8
    # A configured tolerance: 5 % each way; ratio 1.04 stays, 1.06 moves
    tight = spec_of(
        advanced=behavior(scaleUp={"tolerance": "0.05"}, scaleDown={"tolerance": "50m"})
    )
    assert proposal(tight, Metric(10.4, 1), current=10, ready=10) == 10
    assert proposal(tight, Metric(10.6, 1), current=10, ready=10) == 11
    assert proposal(tight, Metric(9.4, 1), current=10, ready=10) == 10  # ratio 0.94: moves
    assert proposal(tight, Metric(9.6, 1), current=10, ready=10) == 10  # 0.96: stays


def test_legacy_rules_double_or_add_four_and_hold_the_highest_for_five_minutes() -> None:
    state = HpaState()
    # current 1 wants 10: at most max(2 x 1, 4) = 4
    replicas, state, _ = step(LEGACY, state, 0, 1, [Metric(10, 1)], 1)
    assert replicas == 4
    # current 4 wants 10: at most max(8, 4) = 8
    replicas, state, _ = step(LEGACY, state, 15, 4, [Metric(10, 1)], 4)
    assert replicas == 8
    # current 8 wants 2: the highest recommendation of the last 300 s is 10, within 2 x 8
    replicas, state, _ = step(LEGACY, state, 30, 8, [Metric(2, 1)], 8)
    assert replicas == 10
    # 301 s after the last 10 (t=15): only the 2 (t=30) and the new 2 are left
    replicas, state, _ = step(LEGACY, state, 316, 10, [Metric(2, 1)], 10)
    assert replicas == 2


def test_default_scale_up_is_max_of_four_pods_and_double_per_15_s() -> None:
    state = HpaState()
    # current 1 wants 10: Pods 1 + 4 = 5, Percent ceil(1 x 2) = 2, Max -> 5
    replicas, state, _ = step(DEFAULTS, state, 0, 1, [Metric(10, 1)], 1)
    assert replicas == 5
    # t=14: the +4 is inside both 15 s periods, so the period started at 1: limit 5
    replicas, state, _ = step(DEFAULTS, state, 14, 5, [Metric(10, 1)], 5)
    assert replicas == 5
    # t=15: the event at 0 is no longer after the cutoff: start 5, Pods 9, Percent 10 -> 10
    replicas, state, _ = step(DEFAULTS, state, 15, 5, [Metric(10, 1)], 5)
    assert replicas == 10


def test_docs_example_of_scale_down_policies() -> None:
    # kubernetes.io: Pods 4 and Percent 10 per 60 s, Max; 80 replicas going to 10.
    spec = spec_of(
        maxReplicaCount=100,
        advanced=behavior(
            scaleDown={
                "stabilizationWindowSeconds": 0,
                "policies": [
                    {"type": "Pods", "value": 4, "periodSeconds": 60},
                    {"type": "Percent", "value": 10, "periodSeconds": 60},
                ],
            }
        ),
    )
    state = HpaState()
    # 80: Pods 80 - 4 = 76, Percent int(80 x 0.9) = 72; the biggest change -> 72
    replicas, state, _ = step(spec, state, 0, 80, [Metric(10, 1)], 80)
    assert replicas == 72
    # t=30, same period: it started at 72 + 8 = 80, limit 72 again: no change
    replicas, state, _ = step(spec, state, 30, 72, [Metric(10, 1)], 72)
    assert replicas == 72
    # t=60: a new period from 72: Pods 68, Percent int(64.8) = 64 ("7.2 rounded up to 8")
    replicas, state, _ = step(spec, state, 60, 72, [Metric(10, 1)], 72)
    assert replicas == 64


def test_production_scale_down_waits_ten_minutes_then_one_worker_per_two() -> None:
    spec = spec_of(
        advanced=behavior(
            scaleDown={
                "stabilizationWindowSeconds": 600,
                "selectPolicy": "Min",
                "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}],
            }
        )
    )
    state = HpaState()
    replicas, state, _ = step(spec, state, 0, 4, [Metric(4, 1)], 4)  # busy: stay at 4
    assert replicas == 4
    # Demand drops to 1 at t=10: the 4 of t=0 is in the 600 s window: hold 4
    replicas, state, _ = step(spec, state, 10, 4, [Metric(1, 1)], 4)
    assert replicas == 4
    replicas, state, _ = step(spec, state, 599, 4, [Metric(1, 1)], 4)  # (-1, 599] holds t=0
    assert replicas == 4
    # t=600: only what is strictly after the cutoff 0 counts, all 1s; Pods 1 per 120 s -> 3
    replicas, state, _ = step(spec, state, 600, 4, [Metric(1, 1)], 4)
    assert replicas == 3
    # t=719: the -1 of t=600 is inside 120 s: the period started at 4, limit 3
    replicas, state, _ = step(spec, state, 719, 3, [Metric(1, 1)], 3)
    assert replicas == 3
    # t=720: it is not after the cutoff 600 any more: one more
    replicas, state, _ = step(spec, state, 720, 3, [Metric(1, 1)], 3)
    assert replicas == 2


def test_scale_up_stabilization_takes_the_lowest_recommendation() -> None:
    spec = spec_of(advanced=behavior(scaleUp={"stabilizationWindowSeconds": 60}))
    state = HpaState()
    replicas, state, _ = step(spec, state, 0, 2, [Metric(2, 1)], 2)
    assert replicas == 2
    # wants 8 at t=30, but the window (-30, 30] also holds 2: the lowest is 2, no change
    replicas, state, _ = step(spec, state, 30, 2, [Metric(8, 1)], 2)
    assert replicas == 2
    # t=61: the window (1, 61] holds 8 and 8: up to 8 (Pods 2 + 4 = 6, Percent 4: Max 6)
    replicas, state, _ = step(spec, state, 61, 2, [Metric(8, 1)], 2)
    assert replicas == 6


def test_disabled_scale_down_never_removes_and_limits_are_kept() -> None:
    spec = spec_of(advanced=behavior(scaleDown={"selectPolicy": "Disabled"}))
    replicas, _, _ = step(spec, HpaState(), 0, 5, [Metric(0, 1)], 5)
    assert replicas == 5
    # Above maxReplicaCount or below the minimum: straight to the bound.
    assert step(spec, HpaState(), 0, 20, [Metric(30, 1)], 20)[0] == 16
    assert step(spec_of(minReplicaCount=3), HpaState(), 0, 1, [Metric(0, 1)], 1)[0] == 3
    # At zero replicas the HPA does nothing (KEDA activates); without a metric neither.
    assert step(spec, HpaState(), 0, 0, [Metric(5, 1)], 0)[0] == 0
    assert step(spec, HpaState(), 0, 3, [], 3)[0] == 3
