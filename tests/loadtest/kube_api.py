"""A stand-in Kubernetes API server: the real paths, JSON and auth of the three objects
`shoal watch --kubernetes` reads, for the real `kubernetes` client to talk to.

There is no cluster on these machines; everything on the client's side (the
kubeconfig, the bearer token, the typed models, the custom-objects API) is the
real code path. The objects are what a cluster with KEDA 2.20 returns for
shoal's worker pool mid scale-out (captured shapes, trimmed of managedFields).
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

TOKEN = "test-token-7c1d"
NS = "shoal"
_META = {"namespace": NS, "resourceVersion": "48213", "creationTimestamp": "2026-12-01T09:00:00Z"}
LABELS = {"app.kubernetes.io/name": "worker-tts", "app.kubernetes.io/part-of": "shoal"}

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "worker-tts", "uid": "0b6e8f0e-1", "generation": 7, **_META},
    "spec": {
        "replicas": 4,
        "selector": {"matchLabels": LABELS},
        "template": {
            "metadata": {"labels": LABELS},
            "spec": {
                "containers": [{"name": "worker", "image": "ghcr.io/shoal-tts/worker-gpu:0.1.0"}]
            },
        },
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
        },
    },
    "status": {
        "observedGeneration": 7,
        "replicas": 4,
        "updatedReplicas": 4,
        "readyReplicas": 2,
        "availableReplicas": 2,
        "unavailableReplicas": 2,
        "conditions": [
            {
                "type": "Available",
                "status": "True",
                "lastUpdateTime": "2026-12-01T09:00:30Z",
                "lastTransitionTime": "2026-12-01T09:00:30Z",
                "reason": "MinimumReplicasAvailable",
                "message": "Deployment has minimum availability.",
            }
        ],
    },
}
HPA: dict[str, Any] = {
    "apiVersion": "autoscaling/v2",
    "kind": "HorizontalPodAutoscaler",
    "metadata": {
        "name": "keda-hpa-worker-tts",
        "uid": "5a1c-2",
        "ownerReferences": [
            {
                "apiVersion": "keda.sh/v1alpha1",
                "kind": "ScaledObject",
                "name": "worker-tts",
                "uid": "9f3a-3",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
        **_META,
    },
    "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker-tts"},
        "minReplicas": 1,
        "maxReplicas": 16,
        "metrics": [
            {
                "type": "External",
                "external": {
                    "metric": {
                        "name": "composite-metric",
                        "selector": {"matchLabels": {"scaledobject.keda.sh/name": "worker-tts"}},
                    },
                    "target": {"type": "AverageValue", "averageValue": "1"},
                },
            }
        ],
    },
    "status": {
        "lastScaleTime": "2026-12-01T09:10:00Z",
        "currentReplicas": 4,
        "desiredReplicas": 8,
        "currentMetrics": [
            {
                "type": "External",
                "external": {
                    "metric": {
                        "name": "composite-metric",
                        "selector": {"matchLabels": {"scaledobject.keda.sh/name": "worker-tts"}},
                    },
                    "current": {"averageValue": "7250m"},
                },
            }
        ],
        "conditions": [
            {
                "type": "AbleToScale",
                "status": "True",
                "lastTransitionTime": "2026-12-01T09:10:00Z",
                "reason": "SucceededRescale",
                "message": "the HPA controller was able to update the target scale to 8",
            },
            {
                "type": "ScalingActive",
                "status": "True",
                "lastTransitionTime": "2026-12-01T09:00:00Z",
                "reason": "ValidMetricFound",
                "message": "the HPA was able to successfully calculate a replica count from "
                "external metric composite-metric",
            },
        ],
    },
}
SCALED_OBJECT: dict[str, Any] = {
    "apiVersion": "keda.sh/v1alpha1",
    "kind": "ScaledObject",
    "metadata": {"name": "worker-tts", "uid": "9f3a-3", "generation": 2, **_META},
    "spec": {
        "scaleTargetRef": {"name": "worker-tts"},
        "pollingInterval": 10,
        "minReplicaCount": 1,
        "maxReplicaCount": 16,
        "triggers": [{"type": "redis", "name": "waiting", "metadata": {"listName": "tts"}}],
    },
    "status": {
        "scaleTargetKind": "apps/v1.Deployment",
        "scaleTargetGVKR": {"group": "apps", "kind": "Deployment", "resource": "deployments",
                            "version": "v1"},
        "originalReplicaCount": 1,
        "lastActiveTime": "2026-12-01T09:10:05Z",
        "externalMetricNames": ["s0-redis-tts", "s1-redis-shoal-inflight-tts"],
        "hpaName": "keda-hpa-worker-tts",
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "ScaledObjectReady",
             "message": "ScaledObject is defined correctly and is ready for scaling"},
            {"type": "Active", "status": "True", "reason": "ScalerActive",
             "message": "Scaling is performed because triggers are active"},
            {"type": "Fallback", "status": "False", "reason": "NoFallbackFound",
             "message": "No fallbacks are active on this scaled object"},
        ],
    },
}  # fmt: skip


@dataclass
class FakeCluster:
    url: str
    objects: dict[str, dict[str, Any]]
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, authorization)

    def kubeconfig(self, folder: Path) -> Path:
        path = folder / "kubeconfig"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": {"server": self.url}}],
            "users": [{"name": "watcher", "user": {"token": TOKEN}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "watcher"}}],
            "current-context": "test",
        }
        path.write_text(yaml.safe_dump(config))
        return path


def _paths() -> dict[str, dict[str, Any]]:
    return {
        f"/apis/apps/v1/namespaces/{NS}/deployments/worker-tts": copy.deepcopy(DEPLOYMENT),
        f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/keda-hpa-worker-tts": (
            copy.deepcopy(HPA)
        ),
        f"/apis/keda.sh/v1alpha1/namespaces/{NS}/scaledobjects/worker-tts": copy.deepcopy(
            SCALED_OBJECT
        ),
    }


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}  # fmt: skip


@contextmanager
def fake_cluster() -> Iterator[FakeCluster]:
    cluster = FakeCluster("", _paths())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            cluster.requests.append((self.path, self.headers.get("authorization", "")))
            if self.headers.get("authorization") != f"Bearer {TOKEN}":
                self._send(401, _status(401, "Unauthorized", "Unauthorized"))
            elif self.path.split("?")[0] in cluster.objects:
                self._send(200, cluster.objects[self.path.split("?")[0]])
            else:
                name = self.path.rstrip("/").rsplit("/", 1)[-1]
                self._send(404, _status(404, "NotFound", f'"{name}" not found'))

        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    cluster.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield cluster
    finally:
        server.shutdown()
        server.server_close()
