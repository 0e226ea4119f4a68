"""Every kustomization renders, and what it renders holds together."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.deploy.manifests import (
    ROOT,
    SHOAL_IMAGES,
    Rendered,
    dig,
    kustomizations,
    label,
    selects,
)

NAMESPACE = "shoal"
CLUSTER_SCOPED = {"Namespace"}


def test_the_overlays_the_issue_names_exist() -> None:
    names = set(kustomizations())
    assert {"overlays/dev", "overlays/gpu", "jobs/fetch-weights"} <= names


@pytest.mark.parametrize("name", sorted(kustomizations()))
def test_renders(rendered: dict[str, Rendered], name: str) -> None:
    assert rendered[name].objects, f"{name} rendered nothing"


def _components() -> list[Path]:
    return sorted(
        path.parent
        for path in [
            *ROOT.glob("k8s/**/kustomization.yaml"),
            *ROOT.glob("keda/**/kustomization.yaml"),
        ]
        if yaml.safe_load(path.read_text())["kind"] == "Component"
    )


def test_every_component_is_rendered_by_some_kustomization() -> None:
    used: set[Path] = set()
    for path in kustomizations().values():
        spec = yaml.safe_load((path / "kustomization.yaml").read_text())
        used |= {(path / c).resolve() for c in spec.get("components", [])}
    # A component only referenced by another component counts through its parent.
    for component in _components():
        spec = yaml.safe_load((component / "kustomization.yaml").read_text())
        if component.resolve() in used:
            used |= {(component / c).resolve() for c in spec.get("components", [])}
    missing = [str(c.relative_to(ROOT)) for c in _components() if c.resolve() not in used]
    assert not missing, f"components no test renders (add a tests/deploy/variants entry): {missing}"


def test_everything_lands_in_the_shoal_namespace(rendered: dict[str, Rendered]) -> None:
    for r in rendered.values():
        for obj in r.objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                where = obj["metadata"].get("namespace")
                assert where == NAMESPACE, f"{r.name}: {obj['kind']}/{obj['metadata']['name']}"


def test_no_secret_is_in_git(rendered: dict[str, Rendered]) -> None:
    for r in rendered.values():
        assert not r.of_kind("Secret"), f"{r.name} renders a Secret; create them out of band"


def test_images_are_pinned(rendered: dict[str, Rendered]) -> None:
    for r in rendered.values():
        for _, template in r.pod_templates():
            for container in template["spec"]["containers"]:
                image = container["image"]
                name, _, tag = image.rpartition(":")
                assert name and tag and tag != "latest", f"{r.name}: unpinned image {image}"
                assert any(ch.isdigit() for ch in tag), f"{r.name}: {image} names no version"


def test_shoal_workloads_carry_the_part_of_label(rendered: dict[str, Rendered]) -> None:
    # The Redis NetworkPolicy and the ServiceMonitor select by it.
    for r in rendered.values():
        for owner, template in r.pod_templates():
            images = [c["image"] for c in template["spec"]["containers"]]
            if any(i.startswith(SHOAL_IMAGES) for i in images):
                assert label(template, "app.kubernetes.io/part-of") == "shoal", (
                    f"{r.name}: {owner['kind']}/{owner['metadata']['name']}"
                )


def test_references_resolve(overlays: list[Rendered]) -> None:
    for r in overlays:
        claims = {o["metadata"]["name"] for o in r.of_kind("PersistentVolumeClaim")}
        for owner, template in r.pod_templates():
            where = f"{r.name}: {owner['kind']}/{owner['metadata']['name']}"
            spec = template["spec"]
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            templates = {
                t["metadata"]["name"] for t in owner["spec"].get("volumeClaimTemplates", [])
            }
            for container in spec["containers"]:
                for mount in container.get("volumeMounts", []):
                    assert mount["name"] in volumes or mount["name"] in templates, where
                for source in container.get("envFrom", []):
                    assert r.has("ConfigMap", source["configMapRef"]["name"]), where
            for volume in volumes.values():
                if "persistentVolumeClaim" in volume:
                    assert volume["persistentVolumeClaim"]["claimName"] in claims, where


def test_services_select_pods_and_ports(overlays: list[Rendered]) -> None:
    for r in overlays:
        for service in r.of_kind("Service"):
            pods = [
                t
                for _, t in r.pod_templates()
                if selects(service["spec"]["selector"], t["metadata"]["labels"])
            ]
            assert pods, f"{r.name}: Service/{service['metadata']['name']} selects no pod"
            for port in service["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                for pod in pods:
                    names = {
                        p.get("name") for c in pod["spec"]["containers"] for p in c.get("ports", [])
                    }
                    numbers = {
                        p["containerPort"]
                        for c in pod["spec"]["containers"]
                        for p in c.get("ports", [])
                    }
                    assert target in names | numbers, (
                        f"{r.name}: {service['metadata']['name']}:{target}"
                    )


def test_autoscalers_target_what_exists(overlays: list[Rendered]) -> None:
    for r in overlays:
        for hpa in r.of_kind("HorizontalPodAutoscaler"):
            ref = hpa["spec"]["scaleTargetRef"]
            assert r.has(ref["kind"], ref["name"])
        for pdb in r.of_kind("PodDisruptionBudget"):
            selector = pdb["spec"]["selector"]["matchLabels"]
            assert any(selects(selector, t["metadata"]["labels"]) for _, t in r.pod_templates())
        for so in r.of_kind("ScaledObject"):
            assert r.has("Deployment", so["spec"]["scaleTargetRef"]["name"])
            for trigger in so["spec"]["triggers"]:
                assert r.has("TriggerAuthentication", trigger["authenticationRef"]["name"])


def test_autoscaled_workloads_leave_replicas_to_the_autoscaler(overlays: list[Rendered]) -> None:
    # A `replicas` in the manifest would reset the count on every `kubectl apply`.
    for r in overlays:
        scaled = {h["spec"]["scaleTargetRef"]["name"] for h in r.of_kind("HorizontalPodAutoscaler")}
        scaled |= {s["spec"]["scaleTargetRef"]["name"] for s in r.of_kind("ScaledObject")}
        for name in scaled:
            assert "replicas" not in r.get("Deployment", name)["spec"], f"{r.name}: {name}"


def test_pods_are_hardened(rendered: dict[str, Rendered]) -> None:
    for r in rendered.values():
        for owner, template in r.pod_templates():
            where = f"{r.name}: {owner['kind']}/{owner['metadata']['name']}"
            spec = template["spec"]
            assert spec["securityContext"]["runAsNonRoot"] is True, where
            assert spec["securityContext"]["runAsUser"] > 0, where
            assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
            assert spec.get("automountServiceAccountToken") is False, where
            for container in spec["containers"]:
                context = container["securityContext"]
                assert context["allowPrivilegeEscalation"] is False, where
                assert context["readOnlyRootFilesystem"] is True, where
                assert context["capabilities"]["drop"] == ["ALL"], where
                resources = container["resources"]
                assert {"cpu", "memory"} <= set(resources["requests"]), where
                assert "memory" in resources["limits"], where
                # A read-only root needs somewhere to write temporary files.
                mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
                if container["image"].startswith(SHOAL_IMAGES):
                    assert "/tmp" in mounts, where


def test_gpu_workers_ask_for_a_gpu_and_tolerate_gpu_nodes(rendered: dict[str, Rendered]) -> None:
    gpu = [r for name, r in rendered.items() if "gpu" in name]
    assert gpu
    for r in gpu:
        for owner, template in r.pod_templates():
            for container in template["spec"]["containers"]:
                if "worker-gpu" not in container["image"]:
                    continue
                where = f"{r.name}: {owner['kind']}/{owner['metadata']['name']}"
                assert container["resources"]["limits"]["nvidia.com/gpu"] == 1, where
                tolerations = template["spec"]["tolerations"]
                assert any(t["key"] == "nvidia.com/gpu" for t in tolerations), where
                terms = dig(
                    template["spec"],
                    ("affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution"),
                )["nodeSelectorTerms"]
                keys = {e["key"] for t in terms for e in t["matchExpressions"]}
                assert "nvidia.com/gpu.product" in keys, where
                mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
                assert mounts["/models"].get("readOnly") is True, where
