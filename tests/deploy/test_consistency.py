"""The deployment agrees with the code: settings, commands, images, timeouts."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from uvicorn.main import main as uvicorn_cli

from shoal.settings import Settings
from tests.deploy import compose
from tests.deploy.manifests import (
    ROOT,
    SHOAL_IMAGES,
    Obj,
    Rendered,
    container_env,
    settings_from,
)
from tests.deploy.test_dockerfiles import DOCKERFILES, final
from worker.__main__ import cli as worker_cli

SETTINGS = {f"SHOAL_{name.upper()}" for name in Settings.model_fields}
# Image-level variables read by Python, pip, apt, torch and the hub client,
# not by shoal: the only ones a Dockerfile may set besides shoal's settings.
IMAGE_ENV = {
    "PATH",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "PIP_NO_CACHE_DIR",
    "PIP_DISABLE_PIP_VERSION_CHECK",
    "DEBIAN_FRONTEND",
    "HOME",
    "HF_HUB_OFFLINE",
}
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _helpers(container: Obj) -> set[str]:
    """Variables that exist only to compose another one through $(NAME)."""
    values = " ".join(e.get("value", "") for e in container.get("env", []))
    return set(re.findall(r"\$\((\w+)\)", values))


def test_every_variable_a_container_sets_is_a_setting(overlays: list[Rendered]) -> None:
    seen: set[str] = set()
    for r in overlays:
        for owner, _, container in r.shoal_containers():
            names = set(container_env(r, container)) - _helpers(container)
            unknown = names - SETTINGS
            assert not unknown, f"{r.name}: {owner['metadata']['name']} sets {unknown}"
            seen |= names
    for name, service in compose.load()["services"].items():
        if service["image"].startswith(SHOAL_IMAGES):
            unknown = set(service["environment"]) - SETTINGS
            assert not unknown, f"docker-compose.yml: {name} sets {unknown}"
    for path in DOCKERFILES.values():
        env = set(final(path).env())
        assert env - SETTINGS <= IMAGE_ENV, f"{path.name}: {env - SETTINGS - IMAGE_ENV}"
    assert {"SHOAL_REDIS_URL", "SHOAL_ENGINE", "SHOAL_JOB_TIMEOUT_SECONDS"} <= seen


def test_env_example_holds_settings_or_compose_variables() -> None:
    for name in compose.env_example():
        assert name in SETTINGS or not name.startswith("SHOAL_"), name


def test_the_values_are_valid_settings(
    overlays: list[Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    for r in overlays:
        for _, _, container in r.shoal_containers():
            settings_from(container_env(r, container), monkeypatch)  # raises when invalid
    for service in compose.load()["services"].values():
        if service["image"].startswith(SHOAL_IMAGES):
            settings_from(service["environment"], monkeypatch)


def _synthesis_pods(r: Rendered) -> Iterator[tuple[Obj, Obj, Obj]]:
    for owner, pod, container in r.shoal_containers():
        command = container["command"]
        if command[:3] == ["python", "-m", "worker"] and "tts" in command:
            yield owner, pod, container


def test_the_grace_period_outlasts_the_longest_job(
    overlays: list[Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = 0
    for r in overlays:
        for owner, pod, container in _synthesis_pods(r):
            settings = settings_from(container_env(r, container), monkeypatch)
            # The job may run job_timeout, then the worker has a lease to notice.
            longest = settings.job_timeout_seconds + settings.lease_seconds
            assert pod["terminationGracePeriodSeconds"] > longest, (r.name, owner["kind"])
            checked += 1
    assert checked >= len(overlays)


def test_image_names_agree_across_compose_kubernetes_and_dockerfiles(
    overlays: list[Rendered],
) -> None:
    in_k8s = {c["image"] for r in overlays for _, _, c in r.shoal_containers()}
    in_compose = {
        s["image"]
        for s in compose.load()["services"].values()
        if s["image"].startswith(SHOAL_IMAGES)
    }
    expected = {f"{name}:{VERSION}" for name in DOCKERFILES}
    assert in_k8s == expected
    assert in_compose == expected
    for service in compose.load()["services"].values():
        if service["image"].startswith(SHOAL_IMAGES):
            name = service["image"].rpartition(":")[0]
            assert ROOT / service["build"]["dockerfile"] == DOCKERFILES[name]
    for name, path in DOCKERFILES.items():
        assert f"-t {name}:{VERSION} ." in path.read_text(), f"{path.name}: its build line"


def _parses(command: Any, args: list[str]) -> None:
    # click's (uvicorn) or typer's own copy of it (the worker): both raise on bad usage.
    command.make_context(command.name or "command", list(args), resilient_parsing=False)


def _check_command(argv: list[str]) -> None:
    """The real command-line parsers accept the arguments."""
    if argv[:3] == ["python", "-m", "worker"]:
        _parses(typer.main.get_command(worker_cli), argv[3:])
    elif argv[:3] == ["python", "-m", "worker.probe"]:
        assert len(argv) == 3
    elif argv[0] == "uvicorn":
        _parses(uvicorn_cli, argv[1:])
        module, _, factory = argv[1].partition(":")
        assert callable(getattr(__import__(module, fromlist=[factory]), factory))
    else:
        raise AssertionError(f"not a shoal command: {argv}")


def _k8s_commands(r: Rendered) -> Iterator[list[str]]:
    for _, _, container in r.shoal_containers():
        yield container["command"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if "exec" in container.get(probe, {}):
                yield container[probe]["exec"]["command"]


def test_every_command_is_accepted_by_its_program(overlays: list[Rendered]) -> None:
    commands = [c for r in overlays for c in _k8s_commands(r)]
    commands += [
        s["command"]
        for s in compose.load()["services"].values()
        if s["image"].startswith(SHOAL_IMAGES)
    ]
    commands += [list(final(p).last("CMD").value) for p in DOCKERFILES.values()]  # type: ignore[union-attr]
    assert len(commands) > 10
    for command in commands:
        _check_command(command)


def test_an_unknown_option_would_be_caught() -> None:
    with pytest.raises(Exception, match="No such option"):
        _check_command(["python", "-m", "worker", "--queue", "tts"])
    with pytest.raises(Exception, match="No such option"):
        _check_command(["uvicorn", "api.main:create_app", "--proxy-header"])


def test_compose_runs_what_kubernetes_runs(rendered: dict[str, Rendered]) -> None:
    services = compose.load()["services"]
    gpu = rendered["overlays/gpu"]
    by_name = {o["metadata"]["name"]: c for o, _, c in gpu.shoal_containers()}
    assert services["gateway"]["command"] == by_name["gateway"]["command"]
    assert services["worker-gpu"]["command"] == by_name["worker-tts"]["command"]
    assert services["worker-webhook"]["command"] == by_name["worker-webhook"]["command"]
    gateway_cmd = final(DOCKERFILES["ghcr.io/shoal-tts/shoal-gateway"]).last("CMD")
    assert gateway_cmd is not None and list(gateway_cmd.value) == by_name["gateway"]["command"]


def test_the_weights_job_fills_the_volume_the_gpu_workers_read(
    rendered: dict[str, Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    job = rendered["jobs/fetch-weights"].get("Job", "fetch-weights")["spec"]["template"]["spec"]
    (job_volume,) = [v for v in job["volumes"] if "persistentVolumeClaim" in v]
    job_claim = job_volume["persistentVolumeClaim"]["claimName"]
    job_mount = {m["name"]: m["mountPath"] for m in job["containers"][0]["volumeMounts"]}
    gpu = rendered["overlays/gpu"]
    for _, pod, container in _synthesis_pods(gpu):
        volumes = {v["name"]: v for v in pod["volumes"]}
        (models,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/models"]
        assert volumes[models["name"]]["persistentVolumeClaim"]["claimName"] == job_claim
        assert gpu.has("PersistentVolumeClaim", job_claim)
        checkpoint = str(settings_from(container_env(gpu, container), monkeypatch).fish_checkpoint)
        destination = checkpoint.replace(models["mountPath"], job_mount[job_volume["name"]], 1)
        assert f'local_dir="{destination}"' in " ".join(job["containers"][0]["command"])


def _worker_tts(r: Rendered) -> dict[str, Any]:
    spec: dict[str, Any] = r.get("Deployment", "worker-tts")["spec"]["template"]["spec"]
    return spec


def test_the_gpu_tiers_are_distinct_choices(rendered: dict[str, Rendered]) -> None:
    high, mid = (_worker_tts(rendered[n]) for n in ("overlays/gpu", "variants/gpu-mid-range"))

    def products(pod: dict[str, Any]) -> set[str]:
        terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        return {
            v
            for term in terms["nodeSelectorTerms"]
            for e in term["matchExpressions"]
            if e["key"] == "nvidia.com/gpu.product"
            for v in e["values"]
        }

    assert products(high) and products(mid) and not products(high) & products(mid)
    high_memory = high["containers"][0]["resources"]["requests"]["memory"]
    mid_memory = mid["containers"][0]["resources"]["requests"]["memory"]
    assert high_memory != mid_memory


def _jobs_per_worker(r: Rendered, container: Obj, monkeypatch: pytest.MonkeyPatch) -> int:
    """Jobs one synthesis worker runs at once, by its settings: its engine's slots."""
    settings = settings_from(container_env(r, container), monkeypatch)
    if settings.engine != "fish-speech":
        return 1
    # Left unset, the engine picks by GPU memory, which no manifest can follow.
    assert settings.fish_max_batch is not None, f"{r.name}: set SHOAL_FISH_MAX_BATCH"
    return settings.fish_max_batch


def test_scaling_counts_as_many_jobs_per_worker_as_it_batches(
    overlays: list[Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One setting, SHOAL_FISH_MAX_BATCH, sizes the batch and KEDA's per-worker target."""
    seen = set()
    for r in overlays:
        for owner, _, container in _synthesis_pods(r):
            batch = _jobs_per_worker(r, container, monkeypatch)
            seen.add(batch)
            if owner["kind"] == "Deployment":
                scaled = r.get("ScaledObject", owner["metadata"]["name"])
                assert scaled["spec"]["advanced"]["scalingModifiers"]["target"] == str(batch), (
                    r.name
                )
            else:  # a ScaledJob's Job: one per `batch` waiting jobs, each runs that many
                (waiting,) = [t for t in owner["spec"]["triggers"] if t["name"] == "waiting"]
                assert waiting["metadata"]["listLength"] == str(batch), r.name
                command = container["command"]
                assert command[command.index("--max-jobs") + 1] == str(batch), r.name
    assert {1, 16, 64} <= seen  # espeak, and both GPU tiers, are covered


def _option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_redis_is_as_durable_everywhere_as_locally(rendered: dict[str, Rendered]) -> None:
    """A 202 means the job is on disk: the AOF is fsynced before each reply, and Redis
    refuses writes when full rather than evicting queued jobs, wherever it runs."""
    redis = rendered["overlays/gpu"].get("StatefulSet", "redis")
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    compose_args = compose.load()["services"]["redis"]["command"]
    for args in (container["args"], compose_args):
        assert _option(args, "--appendonly") == "yes"
        assert _option(args, "--appendfsync") == "always"
        assert _option(args, "--maxmemory-policy") == "noeviction"
