"""A KEDA ScaledObject read into what the local stand-in needs, with KEDA's and the HPA's defaults.

The file is the one the cluster applies (`keda/scaledobject-worker-tts.yaml`);
`shoal up --autoscale` applies the local profile beside it
(`keda/local/short-windows.yaml`, the JSON 6902 patch `kubectl kustomize
keda/local` applies too) so that a spike on a laptop rises and drains in
minutes. Defaults are KEDA's (pollingInterval 30 s, cooldownPeriod 300 s, min
0, max 100) and, for the behaviour, the HPA API's (scale up: no window, Pods 4
and Percent 100 per 15 s, Max; scale down: a 300 s window, Percent 100 per
15 s, Max; tolerance 0.1).

The target counts jobs per worker *slot*: a local worker runs `engine.slots`
jobs at once (one for espeak, SHOAL_FISH_MAX_BATCH for a batching Fish Speech
worker), so `per_worker(slots)` multiplies every target by the slots the
workers registered, as the cluster's target follows SHOAL_FISH_MAX_BATCH.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import jsonpatch
import yaml
from jsonpointer import JsonPointerException
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from shoal.local.autoscale.formula import Formula, FormulaError

REPO = Path(__file__).resolve().parents[3]
PRODUCTION = REPO / "keda" / "scaledobject-worker-tts.yaml"
LOCAL_PROFILE = REPO / "keda" / "local" / "short-windows.yaml"
WORKER_SCALEDOBJECT = "worker-tts"
DEFAULT_TOLERANCE = 0.1
# kube-controller-manager's --horizontal-pod-autoscaler-downscale-stabilization.
DEFAULT_DOWNSCALE_WINDOW = 300.0
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)([a-zA-Z]*)$")
_SUFFIX = {
    "": 1.0, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "P": 1e15, "E": 1e18, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40,
}  # fmt: skip


class ScaledObjectError(ValueError):
    """A file the local stand-in cannot apply, with the reason."""


def quantity(value: str | int | float) -> float:
    """A Kubernetes quantity ("1", "500m", "0.05") as a number."""
    match = _QUANTITY.match(str(value).strip())
    if not match or match.group(2) not in _SUFFIX:
        raise ScaledObjectError(f"{value!r} is not a Kubernetes quantity such as '1' or '500m'")
    return float(match.group(1)) * _SUFFIX[match.group(2)]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, frozen=True, extra="ignore")


class _Policy(_Model):
    type: Literal["Pods", "Percent"]
    value: int = Field(gt=0)
    period_seconds: int = Field(gt=0, le=1800)


class _Rules(_Model):
    stabilization_window_seconds: int | None = Field(None, ge=0, le=3600)
    select_policy: Literal["Max", "Min", "Disabled"] | None = None
    policies: list[_Policy] | None = None
    tolerance: str | float | None = None


class _Behavior(_Model):
    scale_up: _Rules | None = None
    scale_down: _Rules | None = None


class _HpaConfig(_Model):
    behavior: _Behavior | None = None


class _Modifiers(_Model):
    formula: str = ""
    target: str = ""
    activation_target: str = ""
    metric_type: Literal["AverageValue", "Value"] = "AverageValue"


class _Advanced(_Model):
    horizontal_pod_autoscaler_config: _HpaConfig | None = None
    scaling_modifiers: _Modifiers | None = None


class _Fallback(_Model):
    failure_threshold: int = Field(ge=0)
    replicas: int = Field(ge=0)
    behavior: Literal[
        "static", "currentReplicas", "currentReplicasIfHigher", "currentReplicasIfLower"
    ] = "static"


class _Trigger(_Model):
    type: str
    name: str | None = None
    metadata: dict[str, str]
    metric_type: Literal["AverageValue", "Value"] = "AverageValue"


class _Spec(_Model):
    polling_interval: int = Field(30, ge=1)
    cooldown_period: int = Field(300, ge=0)
    initial_cooldown_period: int = Field(0, ge=0)
    min_replica_count: int = Field(0, ge=0)
    max_replica_count: int = Field(100, ge=1)
    idle_replica_count: int | None = None
    fallback: _Fallback | None = None
    advanced: _Advanced | None = None
    triggers: list[_Trigger] = Field(min_length=1)


@dataclass(frozen=True)
class Policy:
    kind: Literal["Pods", "Percent"]
    value: int
    period: float


@dataclass(frozen=True)
class Rules:
    """One direction of the HPA's behaviour, defaults applied."""

    window: float
    select: Literal["Max", "Min", "Disabled"]
    policies: tuple[Policy, ...]
    tolerance: float

    @property
    def longest_period(self) -> float:
        return max((p.period for p in self.policies), default=0.0)


@dataclass(frozen=True)
class Behavior:
    up: Rules
    down: Rules


@dataclass(frozen=True)
class Trigger:
    """A `redis` trigger: the key KEDA counts (LLEN, HLEN, SCARD or ZCARD)."""

    name: str
    key: str
    target: float  # listLength
    activation: float  # activationListLength
    metric_type: Literal["AverageValue", "Value"]


@dataclass(frozen=True)
class Fallback:
    failure_threshold: int
    replicas: int
    behavior: str


@dataclass(frozen=True)
class Composite:
    """`advanced.scalingModifiers`: one metric from the triggers' values."""

    formula: Formula
    target: float
    activation: float
    metric_type: Literal["AverageValue", "Value"]


@dataclass(frozen=True)
class ScalingSpec:
    name: str
    source: str
    polling_interval: float
    cooldown: float
    initial_cooldown: float
    min_replicas: int
    max_replicas: int
    triggers: tuple[Trigger, ...]
    composite: Composite | None
    behavior: Behavior | None  # None: the HPA's legacy rules (no `behavior` given)
    fallback: Fallback | None
    slots: int = 1

    @property
    def hpa_min(self) -> int:
        """KEDA creates its HPA with minReplicas = max(minReplicaCount, 1)."""
        return max(self.min_replicas, 1)

    def per_worker(self, slots: int) -> ScalingSpec:
        """Targets for workers of `slots` slots, from the file's per-slot targets."""
        factor = max(1, slots) / self.slots
        triggers = tuple(replace(t, target=t.target * factor) for t in self.triggers)
        composite = self.composite and replace(
            self.composite, target=self.composite.target * factor
        )
        return replace(self, triggers=triggers, composite=composite, slots=max(1, slots))


def _rules(given: _Rules | None, up: bool) -> Rules:
    """The HPA API's defaulting (autoscaling/v2 GenerateHPAScale{Up,Down}Rules)."""
    given = given or _Rules()
    default_policies: tuple[Policy, ...]
    window: float
    if up:
        default_policies = (Policy("Pods", 4, 15), Policy("Percent", 100, 15))
        window = given.stabilization_window_seconds or 0
    else:
        default_policies = (Policy("Percent", 100, 15),)
        window = (
            DEFAULT_DOWNSCALE_WINDOW
            if given.stabilization_window_seconds is None
            else given.stabilization_window_seconds
        )
    policies = (
        tuple(Policy(p.type, p.value, p.period_seconds) for p in given.policies)
        if given.policies is not None
        else default_policies
    )
    tolerance = DEFAULT_TOLERANCE if given.tolerance is None else quantity(given.tolerance)
    return Rules(float(window), given.select_policy or "Max", policies, tolerance)


def _trigger(index: int, trigger: _Trigger) -> Trigger:
    if not trigger.type.startswith("redis") or trigger.type.endswith("streams"):
        raise ScaledObjectError(
            f"trigger {index} is of type {trigger.type!r}; the local stand-in reads redis "
            "list/hash triggers (what shoal queues)"
        )
    if "listName" not in trigger.metadata:
        raise ScaledObjectError(f"trigger {index} ({trigger.name}) has no listName")
    return Trigger(
        name=trigger.name or f"s{index}",
        key=trigger.metadata["listName"],
        target=quantity(trigger.metadata.get("listLength", "5")),
        activation=quantity(trigger.metadata.get("activationListLength", "0")),
        metric_type=trigger.metric_type,
    )


def from_manifest(obj: dict[str, Any], source: str) -> ScalingSpec:
    """The spec of one ScaledObject manifest (a dict, as YAML loads it)."""
    try:
        spec = _Spec.model_validate(obj.get("spec") or {})
    except ValidationError as exc:
        raise ScaledObjectError(f"{source}: not a ScaledObject KEDA accepts: {exc}") from exc
    if spec.idle_replica_count is not None:
        raise ScaledObjectError(f"{source}: idleReplicaCount is not supported locally")
    if spec.min_replica_count > spec.max_replica_count:
        raise ScaledObjectError(f"{source}: minReplicaCount is above maxReplicaCount")
    triggers = tuple(_trigger(i, t) for i, t in enumerate(spec.triggers))
    advanced = spec.advanced or _Advanced()
    hpa = advanced.horizontal_pod_autoscaler_config
    behavior = None
    if hpa is not None and hpa.behavior is not None:
        behavior = Behavior(
            _rules(hpa.behavior.scale_up, True), _rules(hpa.behavior.scale_down, False)
        )
    fallback = None
    if spec.fallback is not None:
        given = spec.fallback
        fallback = Fallback(given.failure_threshold, given.replicas, given.behavior)
    return ScalingSpec(
        name=str((obj.get("metadata") or {}).get("name", WORKER_SCALEDOBJECT)),
        source=source,
        polling_interval=float(spec.polling_interval),
        cooldown=float(spec.cooldown_period),
        initial_cooldown=float(spec.initial_cooldown_period),
        min_replicas=spec.min_replica_count,
        max_replicas=spec.max_replica_count,
        triggers=triggers,
        composite=_composite(advanced.scaling_modifiers, triggers, source),
        behavior=behavior,
        fallback=fallback,
    )


def _composite(
    modifiers: _Modifiers | None, triggers: tuple[Trigger, ...], source: str
) -> Composite | None:
    if modifiers is None or not modifiers.formula:
        return None
    if not modifiers.target:
        raise ScaledObjectError(f"{source}: scalingModifiers.formula needs a target")
    try:
        formula = Formula.parse(modifiers.formula, {t.name for t in triggers})
    except FormulaError as exc:
        raise ScaledObjectError(f"{source}: {exc}") from exc
    return Composite(
        formula=formula,
        target=quantity(modifiers.target),
        activation=quantity(modifiers.activation_target or "0"),
        metric_type=modifiers.metric_type,
    )


def manifest(path: Path, patch: Path | None = None, name: str = WORKER_SCALEDOBJECT) -> Any:
    """The ScaledObject in `path` (the only one, or the one called `name`), patched."""
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except (OSError, yaml.YAMLError) as exc:
        raise ScaledObjectError(f"cannot read {path}: {exc}") from exc
    found = [d for d in documents if isinstance(d, dict) and d.get("kind") == "ScaledObject"]
    if len(found) > 1:
        found = [d for d in found if d.get("metadata", {}).get("name") == name]
    if len(found) != 1:
        raise ScaledObjectError(f"{path} holds no single ScaledObject (or none named {name!r})")
    obj = found[0]
    if patch is not None:
        try:
            obj = jsonpatch.apply_patch(obj, yaml.safe_load(patch.read_text()))
        except (OSError, yaml.YAMLError, jsonpatch.JsonPatchException, JsonPointerException) as exc:
            raise ScaledObjectError(f"cannot apply the patch {patch} to {path}: {exc}") from exc
    return obj


def load(path: Path | None = None, patch: Path | None = None) -> ScalingSpec:
    """`path`, or by default the production object with the local profile applied."""
    if path is None:
        path, patch = PRODUCTION, LOCAL_PROFILE
        if not path.exists():
            raise ScaledObjectError(
                f"{path} is missing (shoal runs from a copy of its repository): "
                "give a ScaledObject with --scaledobject"
            )
    source = str(path) + (f" + {patch}" if patch else "")
    return from_manifest(manifest(path, patch), source)
