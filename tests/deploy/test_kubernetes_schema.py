"""Built-in objects validate against Kubernetes' own schemas, unknown fields rejected.

The Kubernetes versions: KEDA v2.20 is tested on Kubernetes 1.33 to 1.35, so
the manifests must be valid at both ends of that window. kubernetes-validate
ships the schemas; `strict` rejects any field a version does not know.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.manifests import Obj, Rendered, kustomizations

KUBERNETES_VERSIONS = ("1.33", "1.35")
# CRDs: KEDA's are checked against KEDA's schema (test_keda.py), the
# Prometheus Operator's structurally (test_monitoring.py).
CRD_GROUPS = {"keda.sh", "monitoring.coreos.com"}


def _group(obj: Obj) -> str:
    return str(obj["apiVersion"]).rpartition("/")[0]


def _problems(obj: Obj, version: str) -> list[str]:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(p) for p in error.path)
        return [f"{obj['kind']}/{obj['metadata']['name']}: {path}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [f"no Kubernetes {version} schema: {error.message}"]
    return []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", sorted(kustomizations()))
def test_built_in_objects_validate_strictly(
    rendered: dict[str, Rendered], name: str, version: str
) -> None:
    problems = [
        problem
        for obj in rendered[name].objects
        if _group(obj) not in CRD_GROUPS
        for problem in _problems(obj, version)
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_scaled_job_pods_validate_as_jobs(rendered: dict[str, Rendered], version: str) -> None:
    # KEDA creates a batch/v1 Job from jobTargetRef: it must be a valid Job spec.
    jobs = [sj for r in rendered.values() for sj in r.of_kind("ScaledJob")]
    assert jobs, "no ScaledJob rendered"
    for scaled_job in jobs:
        job: dict[str, Any] = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": scaled_job["metadata"]["name"]},
            "spec": scaled_job["spec"]["jobTargetRef"],
        }
        assert not _problems(job, version)


def test_strict_validation_rejects_an_unknown_field(rendered: dict[str, Rendered]) -> None:
    deployment = rendered["overlays/gpu"].get("Deployment", "worker-tts")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 3}}
    assert _problems(broken, KUBERNETES_VERSIONS[0])
