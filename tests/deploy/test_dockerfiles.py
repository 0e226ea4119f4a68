"""The Dockerfiles, read with Docker's own parser (PyPI `dockerfile`) and checked
statically: no Docker engine runs here, so nothing claims they were built."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import dockerfile
import pytest
from docker.utils.build import exclude_paths

from tests.deploy.manifests import ROOT

DOCKERFILES = {
    "ghcr.io/shoal-tts/shoal-gateway": ROOT / "docker" / "gateway.Dockerfile",
    "ghcr.io/shoal-tts/shoal-worker-cpu": ROOT / "docker" / "worker-cpu.Dockerfile",
    "ghcr.io/shoal-tts/shoal-worker-gpu": ROOT / "docker" / "worker-gpu.Dockerfile",
}


@dataclass
class Stage:
    base: str
    name: str | None
    commands: list[dockerfile.Command]

    def last(self, instruction: str) -> dockerfile.Command | None:
        found = [c for c in self.commands if c.cmd == instruction]
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for command in self.commands:
            if command.cmd == "ENV":
                pairs = command.value
                values |= dict(zip(pairs[::2], pairs[1::2], strict=True))
        return values


def stages(path: Path) -> list[Stage]:
    found: list[Stage] = []
    for command in dockerfile.parse_file(str(path)):
        if command.cmd == "FROM":
            words = command.value
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            found.append(Stage(words[0], name, []))
        else:
            found[-1].commands.append(command)
    return found


def final(path: Path) -> Stage:
    return stages(path)[-1]


def context_files() -> set[str]:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [p.strip() for p in ignore if p.strip() and not p.startswith("#")]
    return set(exclude_paths(str(ROOT), patterns))


def test_every_image_has_its_dockerfile() -> None:
    assert all(path.exists() for path in DOCKERFILES.values())
    assert sorted(DOCKERFILES.values()) == sorted((ROOT / "docker").glob("*.Dockerfile"))


@pytest.mark.parametrize("path", DOCKERFILES.values(), ids=lambda p: p.name)
def test_bases_are_pinned(path: Path) -> None:
    earlier: set[str] = set()
    for stage in stages(path):
        if stage.name:
            earlier.add(stage.name)
        if stage.base in earlier - {stage.name}:
            continue  # built on an earlier stage of this file
        _, _, tag = stage.base.partition(":")
        assert tag and tag != "latest" and re.search(r"\d+\.\d+", tag), stage.base


@pytest.mark.parametrize("path", DOCKERFILES.values(), ids=lambda p: p.name)
def test_runs_as_a_numeric_non_root_user(path: Path) -> None:
    user = final(path).last("USER")
    assert user is not None
    uid, _, gid = user.value[0].partition(":")
    # Numeric, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
    assert uid.isdigit() and int(uid) > 0 and (not gid or gid.isdigit()), user.value


@pytest.mark.parametrize("path", DOCKERFILES.values(), ids=lambda p: p.name)
def test_the_process_is_pid_1(path: Path) -> None:
    stage = final(path)
    cmd = stage.last("CMD")
    assert cmd is not None and cmd.json, "exec form: no shell between SIGTERM and the process"
    entrypoint = stage.last("ENTRYPOINT")
    assert entrypoint is None or entrypoint.json


@pytest.mark.parametrize("path", DOCKERFILES.values(), ids=lambda p: p.name)
def test_has_a_healthcheck_in_exec_form(path: Path) -> None:
    check = final(path).last("HEALTHCHECK")
    assert check is not None and check.json and check.value[0] == "CMD"


def test_the_gateway_checks_its_health_endpoint() -> None:
    check = final(DOCKERFILES["ghcr.io/shoal-tts/shoal-gateway"]).last("HEALTHCHECK")
    assert check is not None and any("/healthz" in part for part in check.value)


def test_worker_healthchecks_use_the_probe_not_celery_inspect() -> None:
    for image, path in DOCKERFILES.items():
        if "worker" in image:
            check = final(path).last("HEALTHCHECK")
            assert check is not None and list(check.value[1:]) == ["python", "-m", "worker.probe"]


def test_the_build_context_is_only_what_the_images_need() -> None:
    files = context_files()
    for needed in (
        "pyproject.toml",
        "README.md",
        "shoal/settings.py",
        "api/main.py",
        "worker/__main__.py",
    ):
        assert needed in files
    for unwanted in (
        ".venv",
        ".shoal",
        "tests",
        ".git",
        ".env",
        "k8s",
        ".pytest_cache",
        ".mypy_cache",
    ):
        assert not any(f == unwanted or f.startswith(unwanted + "/") for f in files), unwanted
    assert not any("__pycache__" in f for f in files)


@pytest.mark.parametrize("path", DOCKERFILES.values(), ids=lambda p: p.name)
def test_copied_sources_are_in_the_build_context(path: Path) -> None:
    files = context_files()
    for stage in stages(path):
        for command in stage.commands:
            if command.cmd == "COPY" and not any(f.startswith("--from") for f in command.flags):
                for source in command.value[:-1]:
                    assert source in files, f"{path.name}: COPY {source} is not in the context"


def test_the_gpu_image_uses_a_cuda_torch_and_ships_no_weights() -> None:
    path = DOCKERFILES["ghcr.io/shoal-tts/shoal-worker-gpu"]
    text = path.read_text()
    bases = [s.base for s in stages(path)]
    assert bases[0].startswith("nvidia/cuda:") and "runtime" in bases[0]
    runs = " ".join(" ".join(c.value) for s in stages(path) for c in s.commands if c.cmd == "RUN")
    assert re.search(r"download\.pytorch\.org/whl/cu\d+", text)
    # torch's version is the one the `fish` extra pins, read from pyproject.toml.
    assert not re.search(r"torch==\d", text) and '["optional-dependencies"]["fish"]' in text
    # fish-speech and the codec packages without their pins, from the same file
    # `make install-fish` uses; the image copies it into the build context.
    assert "--no-deps -r requirements-fish-nodeps.txt" in runs
    nodeps = (ROOT / "requirements-fish-nodeps.txt").read_text()
    assert re.search(r"^fish-speech==", nodeps, re.MULTILINE)
    assert "requirements-fish-nodeps.txt" in text.split("COPY", 2)[1]
    assert '".[fish]"' in runs
    assert final(path).env()["SHOAL_FISH_COMPILE_CACHE_DIR"] == "/var/cache/shoal"
    # Weights come from a volume: nothing downloads or copies them into a layer.
    assert "huggingface" not in runs and "snapshot_download" not in runs
    assert final(path).env()["SHOAL_FISH_CHECKPOINT"].startswith("/models/")
