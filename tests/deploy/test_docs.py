"""docs/deploy.md creates every Secret the manifests read, and names what exists."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import kubernetes_validate

from tests.deploy.manifests import ROOT, Rendered, render

GUIDE = ROOT / "docs" / "deploy.md"


def _created_secrets() -> set[tuple[str, str]]:
    """(secret, key) pairs that the guide's `kubectl create secret generic` commands make."""
    text = GUIDE.read_text().replace("\\\n", " ")
    created: set[tuple[str, str]] = set()
    for line in text.splitlines():
        match = re.search(r"create secret generic (\S+)(.*)", line)
        if match:
            keys = re.findall(r"--from-(?:literal|file)=([\w.-]+)=", match.group(2))
            created |= {(match.group(1), key) for key in keys}
    return created


def _referenced_secrets(r: Rendered) -> set[tuple[str, str]]:
    refs: set[tuple[str, str]] = set()
    for _, template in r.pod_templates():
        for container in template["spec"]["containers"]:
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.add((ref["name"], ref["key"]))
    for auth in r.of_kind("TriggerAuthentication"):
        refs |= {(s["name"], s["key"]) for s in auth["spec"]["secretTargetRef"]}
    return refs


def test_every_secret_the_manifests_read_is_created_in_the_guide(
    rendered: dict[str, Rendered],
) -> None:
    created = _created_secrets()
    assert ("shoal-redis", "password") in created
    for r in rendered.values():
        missing = _referenced_secrets(r) - created
        assert not missing, f"{r.name} reads secrets the guide never creates: {missing}"


def test_the_guide_names_paths_that_exist() -> None:
    text = GUIDE.read_text()
    paths = set(re.findall(r"`((?:k8s|keda|docker|tests/deploy)/[\w./-]*)`", text))
    paths |= set(re.findall(r"apply -k ([\w./-]+)", text)) - {"deploy/prod"}
    assert "k8s/overlays/gpu" in paths
    for path in paths:
        assert (ROOT / path.rstrip("/")).exists(), path


def test_the_readme_points_to_the_guide() -> None:
    assert "docs/deploy.md" in (ROOT / "README.md").read_text()


def _yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)


def _render_here(tmp_path: Path, kustomization: str) -> Rendered:
    folder = tmp_path / "overlay"
    folder.mkdir()
    k8s = os.path.relpath(ROOT / "k8s", folder)
    (folder / "kustomization.yaml").write_text(kustomization.replace("../../k8s/", f"{k8s}/"))
    return Rendered("docs example", render(folder))


def test_the_example_overlay_renders_with_its_settings(tmp_path: Path) -> None:
    (example,) = [b for b in _yaml_blocks() if "kind: Kustomization" in b]
    r = _render_here(tmp_path, example)
    (config,) = [
        c for c in r.of_kind("ConfigMap") if c["metadata"]["name"].startswith("shoal-config")
    ]
    assert config["data"]["SHOAL_S3_BUCKET"] == "acme-tts-audio"
    assert config["data"]["SHOAL_ENGINE"] == "fish-speech"  # the gpu overlay's, kept
    claims = r.of_kind("PersistentVolumeClaim")
    assert claims and all(c["spec"]["storageClassName"] == "efs-sc" for c in claims)
    image = r.get("Deployment", "worker-tts")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.acme.internal/shoal-worker-gpu:0.1.0"


def test_the_region_affinity_patch_applies(tmp_path: Path) -> None:
    (patch,) = [b for b in _yaml_blocks() if b.startswith("patches:")]
    kustomization = "namespace: shoal\nresources:\n  - ../../k8s/overlays/gpu\n" + patch
    r = _render_here(tmp_path, kustomization)
    pod = r.get("Deployment", "worker-tts")["spec"]["template"]["spec"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    keys = {e["key"] for e in terms["nodeSelectorTerms"][0]["matchExpressions"]}
    assert keys == {"nvidia.com/gpu.product", "topology.kubernetes.io/region"}


def test_the_weights_loader_pod_passes_the_restricted_standard() -> None:
    match = re.search(r"--overrides='(.*?)'", GUIDE.read_text(), flags=re.DOTALL)
    assert match
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "weights-loader"},
    }
    pod |= json.loads(match.group(1))
    kubernetes_validate.validate(pod, "1.33", strict=True)
    spec = pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for container in spec["containers"]:
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert spec["volumes"][0]["persistentVolumeClaim"]["claimName"] == "shoal-models"
