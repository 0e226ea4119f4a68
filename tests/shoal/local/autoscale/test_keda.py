"""KEDA's activation, cooldown and fallback, and one tick of both loops, by hand.

Expected numbers come from KEDA's docs (scaling deployments: pollingInterval,
cooldownPeriod, activation, fallback, scalingModifiers) and the operator's
source (pkg/scaling/executor/scale_scaledobjects.go, pkg/fallback).
"""

from __future__ import annotations

from shoal.local.autoscale.keda import Observation, State, decide
from tests.shoal.local.autoscale.manifests import behavior, spec_of


def counts(waiting: float, running: float) -> dict[str, float]:
    return {"waiting": waiting, "running": running}


def test_scale_from_zero_on_the_first_job_and_to_zero_after_the_cooldown() -> None:
    spec = spec_of(minReplicaCount=0, pollingInterval=10, cooldownPeriod=300)
    state = State(created=0)
    # Nothing to do at 0: inactive (0 > activationTarget 0 is false), stays 0.
    d = decide(spec, state, Observation(0, counts(0, 0), 0, 0))
    assert (d.replicas, d.active) == (0, False)
    # One job waits: active, 0 -> max(minReplicaCount, 1) = 1; the HPA then sees 1/1: keep.
    d = decide(spec, d.state, Observation(10, counts(1, 0), 0, 0))
    assert (d.replicas, d.active, d.metric) == (1, True, 1)
    # Running, then done at t=30: last active at t=20.
    d = decide(spec, d.state, Observation(20, counts(0, 1), 1, 1))
    d = decide(spec, d.state, Observation(30, counts(0, 0), 1, 1))
    assert d.replicas == 1  # the HPA keeps its minimum of 1; KEDA is cooling down
    # t=320: 20 + 300 = 320 is not before 320: still cooling down.
    d = decide(spec, d.state, Observation(320, counts(0, 0), 1, 1))
    assert d.replicas == 1
    # t=330: the cooldown is over: straight to 0.
    d = decide(spec, d.state, Observation(330, counts(0, 0), 1, 1))
    assert d.replicas == 0


def test_a_warm_minimum_is_never_scaled_to_zero() -> None:
    spec = spec_of(minReplicaCount=1, cooldownPeriod=0)
    d = decide(spec, State(created=0), Observation(1000, counts(0, 0), 1, 1))
    assert d.replicas == 1
    # Below the minimum while inactive: KEDA brings it back up.
    d = decide(spec, State(created=0), Observation(1000, counts(0, 0), 0, 0))
    assert d.replicas == 1


def test_production_object_absorbs_a_burst() -> None:
    # keda/scaledobject-worker-tts.yaml: Percent 100 and Pods 4 per 15 s (Max), max 16.
    spec = spec_of(
        pollingInterval=10,
        advanced=behavior(
            scaleUp={
                "stabilizationWindowSeconds": 0,
                "selectPolicy": "Max",
                "policies": [
                    {"type": "Percent", "value": 100, "periodSeconds": 15},
                    {"type": "Pods", "value": 4, "periodSeconds": 15},
                ],
            }
        ),
    )
    # 30 waiting + 1 running on 1 worker: ratio 31: wants 31; limit max(2, 5) = 5.
    d = decide(spec, State(created=0), Observation(0, counts(30, 1), 1, 1))
    assert d.replicas == 5
    # t=10 (a poll, and a sync at the 10 s poll): the +4 is within 15 s: no more yet.
    d = decide(spec, d.state, Observation(10, counts(26, 5), 5, 5))
    assert d.replicas == 5
    # t=20: period from 5: Percent 10, Pods 9: Max 10.
    d = decide(spec, d.state, Observation(20, counts(21, 10), 5, 5))
    assert d.replicas == 10
    # t=40: from 10: 20 allowed, max 16.
    d = decide(spec, d.state, Observation(40, counts(20, 10), 10, 10))
    assert d.replicas == 16


def test_polls_and_syncs_happen_on_their_interval_only() -> None:
    spec = spec_of(pollingInterval=10)
    d = decide(spec, State(created=0), Observation(0, counts(4, 1), 1, 1))
    assert d.replicas == 4  # legacy rules: max(2 x 1, 4) = 4
    # t=5: neither loop is due: the count stays what the pool has.
    d = decide(spec, d.state, Observation(5, counts(40, 4), 4, 1))
    assert d.replicas == 4
    assert d.metric == 44  # but what it would see is reported
    d = decide(spec, d.state, Observation(10, counts(40, 4), 4, 4))
    assert d.replicas == 8  # 44 wanted, at most 2 x 4


def test_fallback_after_the_failure_threshold() -> None:
    # The production fallback: after 3 failed reads, at least 2 (currentReplicasIfHigher).
    fallback = {"failureThreshold": 3, "replicas": 2, "behavior": "currentReplicasIfHigher"}
    spec = spec_of(pollingInterval=1, fallback=fallback)
    state = State(created=0)
    for t in range(3):  # failures 1, 2, 3: not above the threshold: no metric, no change
        d = decide(spec, state, Observation(t, None, 1, 1))
        assert (d.replicas, d.metric) == (1, None)
        state = d.state
    # The 4th failure: metric = target 1 x max(1, 2) = 2: the HPA scales 1 -> 2.
    d = decide(spec, state, Observation(3, None, 1, 1))
    assert (d.replicas, d.metric) == (2, 2)
    # With 5 workers it keeps 5 (metric 5, ratio 1).
    assert decide(spec, d.state, Observation(4, None, 5, 5)).replicas == 5
    # A good read resets the count.
    d = decide(spec, d.state, Observation(5, counts(0, 0), 5, 5))
    assert d.state.failures == 0


def test_targets_follow_the_slots_of_the_workers() -> None:
    # A batching worker of 4 slots: target 1 per slot -> 4 per worker.
    spec = spec_of(pollingInterval=1).per_worker(4)
    assert spec.composite is not None and spec.composite.target == 4
    # 10 outstanding on 1 worker: ceil(10 / 4) = 3.
    assert decide(spec, State(created=0), Observation(0, counts(6, 4), 1, 1)).replicas == 3
    # Again with 2 slots: the factor is relative to what the file says (per slot).
    assert spec.per_worker(2).composite.target == 2  # type: ignore[union-attr]


def test_triggers_without_modifiers_take_the_max_and_their_own_activation() -> None:
    spec = spec_of(advanced={}, minReplicaCount=0)
    spec_triggers = [t.name for t in spec.triggers]
    assert spec_triggers == ["waiting", "running"]
    # waiting 6 (target 1) -> 6, running 2 -> 2: the HPA takes 6; legacy limit 4 from 1.
    d = decide(spec, State(created=0), Observation(0, counts(6, 2), 1, 1))
    assert (d.replicas, d.active) == (4, True)
