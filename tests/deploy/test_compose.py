"""docker-compose.yml: valid Compose, and the stack the issue describes."""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
from functools import cache
from typing import Any

import jsonschema
import pytest

from tests.deploy import compose
from tests.deploy.manifests import SHOAL_IMAGES


@cache
def _compose_spec() -> jsonschema.protocols.Validator:
    # The Compose specification's JSON Schema, as vendored by check-jsonschema.
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendor.joinpath("compose-spec.json").read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def _errors(document: dict[str, Any]) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in _compose_spec().iter_errors(document)
    ]


def test_validates_against_the_compose_specification() -> None:
    assert not _errors(compose.raw())  # as written
    assert not _errors(compose.load())  # as Compose sees it with .env.example


@pytest.mark.parametrize(
    "mistake",
    [
        lambda d: d["services"]["redis"].update(healthchek={"test": ["CMD", "true"]}),
        lambda d: d["services"]["gateway"].update(depends_on={"redis": {"condition": "healthy"}}),
        lambda d: d["services"]["worker-gpu"]["deploy"]["resources"]["reservations"].update(gpus=1),
    ],
)
def test_the_specification_rejects_mistakes(mistake: Any) -> None:
    document = copy.deepcopy(compose.load())
    mistake(document)
    assert _errors(document)


def test_every_variable_comes_from_env_example() -> None:
    used = compose.referenced()
    declared = set(compose.env_example())
    assert used <= declared, f"set in docker-compose.yml but not in .env.example: {used - declared}"
    # COMPOSE_PROFILES is Compose's own; every other entry feeds the file.
    assert declared - used == {"COMPOSE_PROFILES"}


def test_the_services_the_issue_names() -> None:
    services = compose.load()["services"]
    assert {"redis", "seaweedfs", "gateway", "worker-gpu", "worker-cpu", "worker-webhook"} <= set(
        services
    )
    # Redis keeps an append-only file on a volume.
    command = services["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "always"  # a 202 is on disk
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])
    # One GPU reserved per GPU worker; the espeak worker for machines without one.
    (device,) = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["count"] == 1
    assert services["worker-gpu"]["profiles"] == ["gpu"]
    assert services["worker-cpu"]["profiles"] == ["cpu"]
    assert services["worker-cpu"]["environment"]["SHOAL_ENGINE"] == "espeak"
    assert compose.env_example()["COMPOSE_PROFILES"] in {"gpu", "cpu"}


def test_healthchecks_and_start_order() -> None:
    services = compose.load()["services"]
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition["condition"] == "service_healthy", (name, dependency)
            assert "healthcheck" in services[dependency]
    for name in ("gateway", "worker-gpu", "worker-cpu", "worker-webhook"):
        assert set(services[name]["depends_on"]) == {"redis", "seaweedfs"}, name


def test_shoal_containers_are_hardened_and_only_the_edges_are_published() -> None:
    services = compose.load()["services"]
    for name, service in services.items():
        if service["image"].startswith(SHOAL_IMAGES):
            assert service["read_only"] is True and "/tmp" in service["tmpfs"], name
            assert service["cap_drop"] == ["ALL"], name
            assert "no-new-privileges:true" in service["security_opt"], name
            assert "init" not in service, f"{name}: the process itself must be PID 1"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    assert {n for n, s in services.items() if s.get("ports")} == {"gateway", "seaweedfs"}


def test_seaweedfs_never_sends_telemetry() -> None:
    assert "-master.telemetry=false" in compose.load()["services"]["seaweedfs"]["command"]


def test_stop_grace_outlasts_the_longest_job() -> None:
    document = compose.load()
    timeout = float(compose.env_example()["SHOAL_JOB_TIMEOUT_SECONDS"])
    for name in ("worker-gpu", "worker-cpu"):
        grace = document["services"][name]["stop_grace_period"]
        match = re.fullmatch(r"(\d+)s", grace)
        assert match, f"{name}: write stop_grace_period in seconds ({grace})"
        assert int(match.group(1)) > timeout, name
