"""Metrics, dashboard and alerts agree: docs/operations.md lists exactly what real
processes export, and every PromQL expression of the Grafana dashboard and of
the PrometheusRule parses and names only those metrics."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import promql_parser
import pytest

from tests.deploy.manifests import ROOT, Obj, Rendered, selects
from tests.observed import Observed

REQUIRED_ALERTS = {"ShoalOldestJobWaiting", "ShoalJobFailureRate", "ShoalBacklogWithoutWorkers"}
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}
# Which processes export what the table's "from" column says ("autoscale": the gateway
# under `shoal up --autoscale`, checked in tests/api/test_system.py).
_FROM = {
    "gateway": {"gateway", "both"},
    "worker": {"workers", "both"},
    "webhooks": {"workers", "both"},
}
_ROW = re.compile(r"^\| `(shoal_\w+)` \| (\w+) \|([^|]*)\| (\w+) \|")


@dataclass(frozen=True)
class Documented:
    type: str
    labels: frozenset[str]
    source: str


def documented() -> dict[str, Documented]:
    rows = {}
    for line in (ROOT / "docs" / "operations.md").read_text().splitlines():
        match = _ROW.match(line)
        if match:
            name, kind, labels, source = match.groups()
            assert name not in rows, f"{name} is listed twice"
            rows[name] = Documented(kind, frozenset(re.findall(r"`(\w+)`", labels)), source)
    assert len(rows) > 10, "the metric table of docs/operations.md was not found"
    return rows


def series(metrics: dict[str, Documented]) -> set[str]:
    """The series names a query may select: a histogram's _bucket, a counter's _total..."""
    names = set()
    for name, doc in metrics.items():
        base = name.removesuffix("_total") if doc.type == "counter" else name
        names |= {base + suffix for suffix in _SUFFIXES[doc.type]}
    return names


def test_the_table_lists_exactly_what_each_process_exports(observed: Observed) -> None:
    docs = documented()
    for process, sources in _FROM.items():
        exported = {n: f for n, f in observed.scrape(process).items() if n.startswith("shoal_")}
        expected = {name for name, doc in docs.items() if doc.source in sources}
        assert set(exported) == expected, (
            f"{process}: exported, not documented: {set(exported) - expected}; "
            f"documented, not exported: {expected - set(exported)}"
        )
        for name, family in exported.items():
            assert family.type == docs[name].type, name
            labels = {k for s in family.samples for k in s.labels} - {"le"}
            assert labels <= docs[name].labels, f"{name}: undocumented labels {labels}"


@pytest.fixture(scope="module")
def queryable(observed: Observed) -> set[str]:
    """Series names that are documented and that a real process exported."""
    exported: set[str] = set()
    for process in _FROM:
        for family in observed.scrape(process).values():
            exported |= {sample.name for sample in family.samples}
            exported |= series({family.name: Documented(family.type, frozenset(), "")})
    return series(documented()) & exported


def _selectors(expr: str) -> list[str]:
    names: list[str] = []

    def visit(node: object) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.append(node.name)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


# Grafana's variables, as Grafana would fill them in before Prometheus sees the query.
_VARIABLE = re.compile(r"\$\{?(\w+)\}?")
_VALUES = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h", "namespace": "shoal"}


def _grafana_expr(expr: str) -> str:
    return _VARIABLE.sub(lambda m: _VALUES.get(m.group(1), "x"), expr)


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


def _dashboard(r: Rendered) -> dict[str, Any]:
    (config,) = [
        obj
        for obj in r.of_kind("ConfigMap")
        if obj["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    (body,) = config["data"].values()
    dashboard: dict[str, Any] = json.loads(body)
    return dashboard


def _queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.append((panel["title"], target["expr"]))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":  # label_values(metric, label)
            (metric,) = re.findall(r"label_values\((\w+)", variable["definition"])
            found.append((f"variable {variable['name']}", metric))
    return found


def test_the_required_alerts_exist(monitored: Rendered) -> None:
    assert {rule["alert"] for rule in _rules(monitored)} >= REQUIRED_ALERTS


def test_every_alert_parses_and_names_exported_metrics(
    monitored: Rendered, queryable: set[str]
) -> None:
    for rule in _rules(monitored):
        names = _selectors(rule["expr"])
        assert names, rule["alert"]
        assert set(names) <= queryable, f"{rule['alert']}: {set(names) - queryable}"
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]


def test_the_dashboard_is_wired_for_grafanas_sidecar(monitored: Rendered) -> None:
    dashboard = _dashboard(monitored)
    assert dashboard["uid"] == "shoal-overview"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 15
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_every_dashboard_query_parses_and_names_exported_metrics(
    monitored: Rendered, queryable: set[str]
) -> None:
    queries = _queries(_dashboard(monitored))
    used: set[str] = set()
    for title, expr in queries:
        names = _selectors(_grafana_expr(expr))
        assert names, title
        assert set(names) <= queryable, f"{title}: {set(names) - queryable}"
        used |= set(names)
    # What the issue asks to see is on the dashboard.
    for needed in (
        "shoal_job_queue_wait_seconds_bucket",
        "shoal_job_time_to_audio_seconds_bucket",
        "shoal_worker_stage_seconds_bucket",
        "shoal_worker_real_time_factor_bucket",
        "shoal_worker_audio_seconds_total",
        "shoal_worker_busy_slots",
        "shoal_worker_batch_sequences",
        "shoal_jobs_failed_total",
        "shoal_jobs_canceled_total",
        "shoal_queue_waiting",
        "shoal_queue_running",
        "shoal_webhook_deliveries_total",
        "shoal_http_requests_total",
    ):
        assert needed in used, needed


def test_a_misspelt_metric_or_broken_expression_is_caught(queryable: set[str]) -> None:
    assert "shoal_oldest_wating_job_seconds" not in queryable
    assert "shoal_queue_waiting" in queryable
    with pytest.raises(ValueError, match="parenthesis"):
        _selectors("max(shoal_queue_waiting")
    with pytest.raises(ValueError, match="brackets"):
        _selectors(_grafana_expr("rate(shoal_http_requests_total[$__rate_interval)"))


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
