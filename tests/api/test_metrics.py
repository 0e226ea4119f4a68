"""The gateway's metrics: requests, submissions, cancels and the shared queue gauges,
and counts that stay whole when the gateway runs several uvicorn processes."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.observed import Observed, parse
from tests.support import Env, gateway


def test_submissions_cancels_and_requests(observed: Observed) -> None:
    m = observed.scrape("gateway")
    submitted = m["shoal_jobs_submitted_total"]
    assert submitted.value("shoal_jobs_submitted_total", engine="espeak", format="wav") == 3
    canceled = m["shoal_jobs_canceled_total"]
    assert canceled.value("shoal_jobs_canceled_total", state="queued") == 1
    requests = m["shoal_http_requests_total"]
    posted = requests.value(
        "shoal_http_requests_total", method="POST", route="/v1/jobs", status="202"
    )
    assert posted == 3
    latency = m["shoal_http_request_duration_seconds"]
    count = latency.value(
        "shoal_http_request_duration_seconds_count", method="POST", route="/v1/jobs"
    )
    assert count == 3
    assert not [s for s in requests.samples if s.labels["route"] == "/metrics"]  # not counted


def test_queue_gauges_come_from_redis(observed: Observed) -> None:
    m = observed.scrape("gateway")
    assert m["shoal_queue_waiting"].value(queue="tts") == 0
    assert m["shoal_queue_running"].value(queue="webhooks") == 0
    assert m["shoal_workers"].value(engine="espeak") == 1
    assert m["shoal_workers"].value(engine="none") == 1  # the webhook worker
    assert m["shoal_oldest_waiting_job_seconds"].value() == 0


def test_several_uvicorn_processes_report_whole_counts(env: Env, tmp_path: Path) -> None:
    # Without prometheus_client's multiprocess mode each scrape would show only
    # the requests of whichever process answered it.
    folder = tmp_path / "prometheus"
    folder.mkdir()
    requests = 24
    with gateway(env.with_(PROMETHEUS_MULTIPROC_DIR=str(folder)), processes=2) as url:
        for _ in range(requests):  # a new connection each: both processes take some
            assert httpx.get(f"{url}/v1/queue", timeout=10).status_code == 200
        for _ in range(6):
            m = parse(httpx.get(f"{url}/metrics", timeout=10).text)
            counted = m["shoal_http_requests_total"].value(
                "shoal_http_requests_total", method="GET", route="/v1/queue", status="200"
            )
            assert counted == requests
            assert "shoal_queue_waiting" in m  # the shared gauges, once, beside the sums
    pids = {path.stem.rsplit("_", 1)[-1] for path in folder.glob("counter_*.db")}
    assert len(pids) == 2, pids


def test_routes_without_a_template_are_named_by_path_or_unmatched(client: httpx.Client) -> None:
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/no/such/page/4711").status_code == 404
    requests = parse(client.get("/metrics").text)["shoal_http_requests_total"]
    routes = {(s.labels["route"], s.labels["status"]) for s in requests.samples}
    assert ("/openapi.json", "200") in routes
    assert ("unmatched", "404") in routes
    assert not [r for r, _ in routes if "4711" in r]  # a raw 404 path never becomes a label
