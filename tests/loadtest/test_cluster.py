"""`shoal watch --kubernetes` against an API server that speaks Kubernetes' paths and JSON,
through the real `kubernetes` client, kubeconfig and bearer token included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.cluster import ClusterReader, ClusterUnavailable
from loadtest.watch import read_csv
from tests.conftest import Live
from tests.loadtest.kube_api import NS, fake_cluster


def test_reads_the_deployment_its_hpa_and_the_scaledobject(tmp_path: Path) -> None:
    with fake_cluster() as cluster:
        reader = ClusterReader(kubeconfig=cluster.kubeconfig(tmp_path))
        replicas = reader.read()
        assert (replicas.desired, replicas.current, replicas.ready) == (8, 4, 2)
        assert (replicas.min_replicas, replicas.max_replicas) == (1, 16)
        assert replicas.active is True
        assert replicas.metric == pytest.approx(7.25 * 4)  # averageValue 7250m on 4 pods
        assert replicas.target == 1
        paths = [path for path, _ in cluster.requests]
        assert paths == [
            f"/apis/apps/v1/namespaces/{NS}/deployments/worker-tts",
            f"/apis/keda.sh/v1alpha1/namespaces/{NS}/scaledobjects/worker-tts",
            f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/keda-hpa-worker-tts",
        ]
        assert {auth for _, auth in cluster.requests} == {"Bearer test-token-7c1d"}

        # The pool drains: KEDA drops Active, the HPA wants the minimum again.
        so = cluster.objects[paths[1]]
        next(c for c in so["status"]["conditions"] if c["type"] == "Active")["status"] = "False"
        cluster.objects[paths[2]]["status"]["desiredReplicas"] = 1
        drained = reader.read()
        assert (drained.desired, drained.active) == (1, False)


def test_cluster_errors_are_clear(tmp_path: Path) -> None:
    with fake_cluster() as cluster:
        with pytest.raises(ClusterUnavailable, match="404"):
            ClusterReader(deployment="nope", kubeconfig=cluster.kubeconfig(tmp_path)).read()
        config = cluster.kubeconfig(tmp_path)
        config.write_text(config.read_text().replace("test-token-7c1d", "wrong"))
        with pytest.raises(ClusterUnavailable, match="401"):
            ClusterReader(kubeconfig=config).read()
    with pytest.raises(ClusterUnavailable, match="kubeconfig"):
        ClusterReader(kubeconfig=tmp_path / "missing")


def test_shoal_watch_kubernetes_writes_the_cluster_replicas(tmp_path: Path, live: Live) -> None:
    csv = tmp_path / "watch.csv"
    with fake_cluster() as cluster:
        argv = [sys.executable, "-m", "shoal.cli", "watch", "--url", live.url, "--kubernetes",
                "--kubeconfig", str(cluster.kubeconfig(tmp_path)), "--csv", str(csv),
                "--interval", "0.5", "--duration", "3", "--no-live"]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = read_csv(csv)
    assert len(rows) >= 2
    last = rows[-1]
    assert last["source"] == "kubernetes"
    assert (last["desired"], last["current"], last["ready"]) == ("8", "4", "2")
    assert int(last["workers"]) >= 1  # the queue side still comes from the gateway
