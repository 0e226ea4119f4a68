"""ScaledObject manifests for the decision tests, built like the files in keda/."""

from __future__ import annotations

import copy
from typing import Any

from shoal.local.autoscale.scaledobject import ScalingSpec, from_manifest


def scaled_object(**spec: Any) -> dict[str, Any]:
    """A worker ScaledObject: `waiting + running`, target 1, plus the given spec fields."""
    base: dict[str, Any] = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "worker-tts"},
        "spec": {
            "scaleTargetRef": {"name": "worker-tts"},
            "minReplicaCount": 1,
            "maxReplicaCount": 16,
            "advanced": {
                "scalingModifiers": {
                    "formula": "waiting + running",
                    "target": "1",
                    "activationTarget": "0",
                    "metricType": "AverageValue",
                }
            },
            "triggers": [
                {
                    "type": "redis",
                    "name": "waiting",
                    "metadata": {"listName": "tts", "listLength": "1"},
                },
                {
                    "type": "redis",
                    "name": "running",
                    "metadata": {"listName": "shoal:inflight:tts", "listLength": "1"},
                },
            ],
        },
    }
    merged = copy.deepcopy(base)
    merged["spec"].update(spec)
    return merged


def behavior(**directions: Any) -> dict[str, Any]:
    """`advanced` with scalingModifiers kept and the given HPA behaviour."""
    advanced: dict[str, Any] = scaled_object()["spec"]["advanced"]
    advanced["horizontalPodAutoscalerConfig"] = {"behavior": directions}
    return advanced


def spec_of(**fields: Any) -> ScalingSpec:
    return from_manifest(scaled_object(**fields), "test")
