"""ServiceMonitor and PrometheusRule: they scrape what exists and alert on
metrics the code exports, in PromQL that parses."""

from __future__ import annotations

import promql_parser
import pytest
from prometheus_client import REGISTRY

import api.metrics
import worker.metrics
from tests.deploy.manifests import Obj, Rendered, selects

REQUIRED_ALERTS = {"ShoalOldestJobWaiting", "ShoalJobFailureRate", "ShoalBacklogWithoutWorkers"}
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}


def _exported_names() -> set[str]:
    """Every series name the gateway and the workers can export."""
    assert api.metrics.JOBS_SUBMITTED and worker.metrics.JOBS  # registered on import
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        for suffix in _SUFFIXES.get(family.type, ("",))
    }


def _selectors(expr: str) -> list[str]:
    names: list[str] = []

    def visit(node: object) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.append(node.name)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


@pytest.fixture
def monitored(rendered: dict[str, Rendered]) -> Rendered:
    return rendered["overlays/gpu"]


def _rules(r: Rendered) -> list[Obj]:
    return [
        rule
        for obj in r.of_kind("PrometheusRule")
        for g in obj["spec"]["groups"]
        for rule in g["rules"]
    ]


def test_the_required_alerts_exist(monitored: Rendered) -> None:
    assert {rule["alert"] for rule in _rules(monitored)} >= REQUIRED_ALERTS


def test_every_expression_parses_and_names_exported_metrics(monitored: Rendered) -> None:
    exported = _exported_names()
    for rule in _rules(monitored):
        names = _selectors(rule["expr"])
        assert names, rule["alert"]
        assert set(names) <= exported, f"{rule['alert']}: {set(names) - exported}"
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]


def test_a_misspelt_metric_or_broken_expression_is_caught() -> None:
    assert "shoal_oldest_wating_job_seconds" not in _exported_names()
    with pytest.raises(ValueError, match="parenthesis"):
        _selectors("max(shoal_queue_waiting")


def test_the_service_monitor_reaches_the_gateway_and_the_workers(monitored: Rendered) -> None:
    (monitor,) = monitored.of_kind("ServiceMonitor")
    ports = {e["port"] for e in monitor["spec"]["endpoints"]}
    services = [
        s
        for s in monitored.of_kind("Service")
        if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"].get("labels", {}))
    ]
    scraped: set[str] = set()
    for service in services:
        for port in service["spec"]["ports"]:
            if port["name"] in ports:
                for owner, template in monitored.pod_templates():
                    if selects(service["spec"]["selector"], template["metadata"]["labels"]):
                        scraped.add(owner["metadata"]["name"])
    assert {"gateway", "worker-tts", "worker-webhook"} <= scraped
    # Worker pods serve metrics where their ServiceMonitor port points.
    for owner, _, container in monitored.shoal_containers():
        if owner["metadata"]["name"].startswith("worker-"):
            env = {e["name"]: e.get("value") for e in container["env"]}
            port = {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"]
            assert env["SHOAL_WORKER_METRICS_PORT"] == str(port)
