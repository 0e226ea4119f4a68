"""Reading the ScaledObject the cluster applies, and the local profile beside it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shoal.local.autoscale.formula import Formula, FormulaError
from shoal.local.autoscale.scaledobject import (
    LOCAL_PROFILE,
    PRODUCTION,
    Policy,
    ScaledObjectError,
    load,
    manifest,
    quantity,
)
from tests.deploy import keda_schema
from tests.deploy.manifests import ROOT, render
from tests.shoal.local.autoscale.manifests import scaled_object, spec_of


def test_the_production_object_as_kubernetes_would_default_it() -> None:
    spec = load(PRODUCTION)
    assert (spec.polling_interval, spec.cooldown, spec.min_replicas, spec.max_replicas) == (
        10,
        900,
        1,
        16,
    )
    assert spec.composite is not None
    assert spec.composite.formula.text == "waiting + running"
    assert (spec.composite.target, spec.composite.activation) == (1, 0)
    assert [(t.name, t.key) for t in spec.triggers] == [
        ("waiting", "tts"),
        ("running", "shoal:inflight:tts"),
    ]
    assert spec.behavior is not None
    assert spec.behavior.down.window == 600
    assert spec.behavior.down.policies == (Policy("Pods", 1, 120),)
    assert spec.behavior.up.tolerance == 0.1  # not given: the cluster-wide default
    assert spec.fallback is not None and spec.fallback.behavior == "currentReplicasIfHigher"


def test_the_default_is_the_local_profile_and_kustomize_renders_the_same() -> None:
    spec = load()
    assert spec.polling_interval == 2 and spec.max_replicas == 4
    assert spec.behavior is not None and spec.behavior.down.window == 30
    assert "short-windows.yaml" in spec.source
    # The Component applies the same patch: kubectl's result equals ours.
    rendered = render(ROOT / "tests" / "deploy" / "variants" / "dev-short-windows")
    ours = manifest(PRODUCTION, LOCAL_PROFILE)
    theirs = next(
        o for o in rendered if o["kind"] == "ScaledObject" and o["metadata"]["name"] == "worker-tts"
    )
    # The dev overlay sets maxReplicaCount 4 too; everything in spec agrees.
    assert theirs["spec"] == ours["spec"]
    assert not keda_schema.errors(ours)


def test_unsupported_or_broken_objects_say_why(tmp_path: Path) -> None:
    def write(obj: object) -> Path:
        path = tmp_path / "so.yaml"
        path.write_text(yaml.safe_dump(obj))
        return path

    cases = {
        "idleReplicaCount": scaled_object(idleReplicaCount=0),
        "maxReplicaCount": scaled_object(minReplicaCount=5, maxReplicaCount=2),
        "not triggers": scaled_object(
            advanced={"scalingModifiers": {"formula": "queue * 2", "target": "1"}}
        ),
        "needs a target": scaled_object(advanced={"scalingModifiers": {"formula": "waiting"}}),
        "the local stand-in reads redis": scaled_object(
            triggers=[{"type": "cpu", "metadata": {"value": "50"}}]
        ),
        "not a ScaledObject KEDA accepts": scaled_object(pollingInterval="often"),
    }
    for needle, obj in cases.items():
        with pytest.raises(ScaledObjectError, match=needle):
            load(write(obj))
    with pytest.raises(ScaledObjectError, match="no single ScaledObject"):
        load(write({"kind": "Deployment"}))
    patch = tmp_path / "patch.yaml"
    patch.write_text(yaml.safe_dump([{"op": "replace", "path": "/spec/nothere/x", "value": 1}]))
    with pytest.raises(ScaledObjectError, match="cannot apply the patch"):
        load(write(scaled_object()), patch)


def test_rendered_files_with_several_objects_pick_the_worker_pool(tmp_path: Path) -> None:
    webhook = scaled_object()
    webhook["metadata"]["name"] = "worker-webhook"
    path = tmp_path / "all.yaml"
    path.write_text(yaml.safe_dump_all([{"kind": "Namespace"}, webhook, scaled_object()]))
    assert load(path).name == "worker-tts"


@pytest.mark.parametrize(
    ("text", "value"), [("1", 1), ("500m", 0.5), ("0.05", 0.05), ("2k", 2000), ("1Ki", 1024)]
)
def test_quantities(text: str, value: float) -> None:
    assert quantity(text) == value


def test_formulas_evaluate_the_arithmetic_keda_users_write() -> None:
    known = {"waiting", "running"}
    values = {"waiting": 7.0, "running": 3.0}
    assert Formula.parse("waiting + running", known).evaluate(values) == 10
    assert Formula.parse("max(waiting, running) * 2", known).evaluate(values) == 14
    assert Formula.parse("ceil((waiting + running) / 4)", known).evaluate(values) == 3
    assert Formula.parse("waiting ^ 2 - running % 2", known).evaluate(values) == 48
    assert Formula.parse("(waiting > 5) * waiting", known).evaluate(values) == 7
    assert Formula.parse("waiting / (running - 3)", known).evaluate(values) == float("inf")
    for unsupported in (
        "waiting > 2 ? waiting : 0",
        "waiting ?? 0",
        "waiting.x",
        "__import__('os')",
    ):
        with pytest.raises(FormulaError):
            Formula.parse(unsupported, known | {"__import__"})
    assert spec_of().composite is not None
