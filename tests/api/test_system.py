"""Probes, metrics, the queue view and the OpenAPI document."""

from __future__ import annotations

import httpx

from tests.conftest import Live
from tests.support import Env, gateway, stream_fields, wait_for_job


def test_probes(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_readyz_and_submissions_fail_clearly_without_redis(env: Env) -> None:
    # Redis goes away after start-up (here: a port nobody listens on).
    broken = env.with_(SHOAL_REDIS_URL="redis://127.0.0.1:9/0")
    with gateway(broken, ready=False) as url:
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 503
        assert ready.json()["code"] == "redis_unavailable"
        assert ready.headers["retry-after"]
        submit = httpx.post(f"{url}/v1/jobs", json={"text": "Hi"})
        assert submit.status_code == 503
        assert submit.headers["content-type"] == "application/problem+json"
        assert httpx.get(f"{url}/healthz").status_code == 200  # alive, just not ready


def test_queue_shows_work_and_workers(client: httpx.Client, live: Live) -> None:
    state = client.get("/v1/queue").json()
    assert set(state["queues"]) == {"tts", "webhooks"}
    assert state["queues"]["tts"]["running"] >= 0
    names = [w["name"] for w in state["workers"]]
    assert live.worker in names
    worker = next(w for w in state["workers"] if w["name"] == live.worker)
    assert worker["engine"] == "espeak" and worker["queues"] == ["tts"]


def test_metrics_are_prometheus_text(client: httpx.Client) -> None:
    wait_for_job(client, client.post("/v1/jobs", json={"text": "Count me."}).json()["id"])
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'shoal_jobs_submitted_total{engine="espeak",format="wav"}' in text
    assert 'shoal_queue_waiting{queue="tts"}' in text
    assert "shoal_oldest_waiting_job_seconds" in text
    assert 'shoal_workers{engine="espeak"} 1.0' in text
    assert 'shoal_http_requests_total{method="POST",route="/v1/jobs",status="202"}' in text
    assert (
        'shoal_http_request_duration_seconds_count{method="GET",route="/v1/jobs/{job_id}"}' in text
    )


def test_openapi_documents_the_contract(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/audio",
        "/v1/jobs/{job_id}/cancel",
        "/v1/voices",
        "/v1/queue",
        "/healthz",
        "/readyz",
    ):
        assert path in paths, path
    create = paths["/v1/jobs"]["post"]
    assert create["requestBody"]["content"]["application/json"]["example"]["text"]
    assert {"202", "422", "413"} <= set(create["responses"])
    assert client.get("/docs").status_code == 200


def test_gateway_starts_without_any_worker(env: Env) -> None:
    with gateway(env) as url:
        voices = httpx.get(f"{url}/v1/voices").json()
        assert voices["voices"] == []  # nothing published yet; submissions still work
        assert httpx.post(f"{url}/v1/jobs", json={"text": "Hi"}).status_code == 202


def test_queue_reports_recent_completions_and_the_local_autoscaler(
    client: httpx.Client, live: Live
) -> None:
    from shoal import keys
    from shoal.registry import AutoscalerStatus, publish_autoscaler

    done = wait_for_job(client, client.post("/v1/jobs", json={"text": "Time me."}).json()["id"])
    recent = client.get("/v1/queue", params={"window": 120}).json()["recent"]
    assert recent["window_seconds"] == 120
    assert recent["succeeded"] >= 1 and recent["completions_per_second"] > 0
    # Time to audio is the job record's finished - created, so it lies within its own.
    assert 0 < recent["time_to_audio_p50_seconds"] <= recent["time_to_audio_p95_seconds"]
    ids = [fields["job"] for fields in stream_fields(live.redis, keys.COMPLETIONS)]
    assert ids.count(done["id"]) == 1  # written once per job
    assert client.get("/v1/queue", params={"window": 0}).status_code == 422

    assert client.get("/v1/queue").json()["autoscaler"] is None  # nobody autoscales here
    status = AutoscalerStatus(
        source="keda/scaledobject-worker-tts.yaml",
        desired=3,
        current=2,
        ready=1,
        retiring=0,
        min_replicas=1,
        max_replicas=4,
        metric=5,
        target=1,
        slots=1,
        active=True,
        reason="metrics ask for 5",
        updated_at=0,
    )
    publish_autoscaler(live.redis, status, ttl_seconds=30)
    try:
        shown = client.get("/v1/queue").json()["autoscaler"]
        assert (shown["desired"], shown["current"], shown["ready"]) == (3, 2, 1)
        text = client.get("/metrics").text
        assert 'shoal_autoscaler_replicas{state="desired"} 3.0' in text
        assert 'shoal_autoscaler_replicas{state="ready"} 1.0' in text
        assert "shoal_autoscaler_metric 5.0" in text
    finally:
        live.redis.delete(keys.AUTOSCALER)
    assert "shoal_autoscaler_replicas{" not in client.get("/metrics").text
