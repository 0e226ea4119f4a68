"""docs/deploy.md creates every Secret the manifests read, and names what exists."""

from __future__ import annotations

import re

from tests.deploy.manifests import ROOT, Rendered

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
