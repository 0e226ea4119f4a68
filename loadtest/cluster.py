"""The worker pool as a cluster sees it: the Deployment, its HPA and the ScaledObject.

Read with the official `kubernetes` client and the user's kubeconfig (or the
in-cluster service account), the same objects `kubectl get deploy,hpa,
scaledobject` shows. KEDA names its HPA `keda-hpa-<ScaledObject>` unless the
ScaledObject's status says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

KEDA = ("keda.sh", "v1alpha1", "scaledobjects")


class ClusterUnavailable(RuntimeError):
    """The API server could not be asked, or refused (with its reason)."""


@dataclass(frozen=True)
class ClusterReplicas:
    desired: int  # the HPA's desiredReplicas (else the Deployment's spec.replicas)
    current: int  # the Deployment's status.replicas (terminating pods excluded)
    ready: int  # the Deployment's status.readyReplicas
    min_replicas: int
    max_replicas: int
    active: bool  # the ScaledObject's Active condition
    metric: float | None  # the HPA's current value of the metric, summed over replicas
    target: float | None  # the metric per replica the HPA aims at


def quantity(text: str) -> float:
    """The few forms the HPA reports metric values in ("2", "2500m", "1k")."""
    units = {"m": 1e-3, "k": 1e3, "M": 1e6}
    return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)


class ClusterReader:
    def __init__(
        self,
        namespace: str = "shoal",
        deployment: str = "worker-tts",
        scaledobject: str = "worker-tts",
        kubeconfig: Path | None = None,
        context: str | None = None,
    ) -> None:
        try:
            api = config.new_client_from_config(
                config_file=str(kubeconfig) if kubeconfig else None, context=context
            )
        except (config.ConfigException, OSError) as exc:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                raise ClusterUnavailable(
                    f"no usable kubeconfig ({exc}) and not inside a cluster: "
                    "give --kubeconfig or set KUBECONFIG"
                ) from exc
            api = client.ApiClient()
        self.namespace, self.deployment, self.scaledobject = namespace, deployment, scaledobject
        self.apps = client.AppsV1Api(api)
        self.autoscaling = client.AutoscalingV2Api(api)
        self.custom = client.CustomObjectsApi(api)

    def read(self) -> ClusterReplicas:
        try:
            return self._read()
        except ApiException as exc:
            raise ClusterUnavailable(f"the API server answered {exc.status}: {exc.reason}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise ClusterUnavailable(f"the API server is unreachable: {exc}") from exc

    def _read(self) -> ClusterReplicas:
        deployment = self.apps.read_namespaced_deployment(self.deployment, self.namespace)
        so: dict[str, Any] = self.custom.get_namespaced_custom_object(
            *KEDA[:2], self.namespace, KEDA[2], self.scaledobject
        )
        status = so.get("status") or {}
        hpa_name = status.get("hpaName") or f"keda-hpa-{self.scaledobject}"
        hpa = self.autoscaling.read_namespaced_horizontal_pod_autoscaler(hpa_name, self.namespace)
        conditions = {c["type"]: c["status"] == "True" for c in status.get("conditions") or []}
        spec_replicas = deployment.spec.replicas or 0
        return ClusterReplicas(
            desired=hpa.status.desired_replicas if hpa.status else spec_replicas,
            current=deployment.status.replicas or 0,
            ready=deployment.status.ready_replicas or 0,
            min_replicas=int(so["spec"].get("minReplicaCount", 0)),
            max_replicas=int(so["spec"].get("maxReplicaCount", 100)),
            active=conditions.get("Active", False),
            metric=_metric(hpa),
            target=_target(hpa),
        )


def _metric(hpa: Any) -> float | None:
    """The external metric's average per pod times the pods: what KEDA computed."""
    for metric in (hpa.status.current_metrics or []) if hpa.status else []:
        current = metric.external.current if metric.external else None
        if current is not None and current.average_value is not None:
            return quantity(current.average_value) * (hpa.status.current_replicas or 0)
        if current is not None and current.value is not None:
            return quantity(current.value)
    return None


def _target(hpa: Any) -> float | None:
    for metric in hpa.spec.metrics or []:
        target = metric.external.target if metric.external else None
        if target is not None and (target.average_value or target.value) is not None:
            return quantity(str(target.average_value or target.value))
    return None
