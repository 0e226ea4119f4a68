"""/v1/jobs through a real uvicorn gateway, Redis and a Celery worker."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from shoal import keys
from tests.conftest import Live
from tests.support import Env, decode, gateway, wait_for_job


def queued_messages(live: Live) -> int:
    return int(live.redis.llen(keys.TTS_QUEUE))


def job_count(live: Live) -> int:
    return len(live.redis.keys(keys.job("*")))


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"text": ""}, 422, "text_empty"),
        ({"text": "  \n\t "}, 422, "text_empty"),
        ({"text": "a" * 5001}, 422, "text_too_long"),
        ({}, 422, "missing_field"),
        ({"text": 42}, 422, "invalid_type"),
        ({"text": "Hi", "format": "aiff"}, 422, "unsupported_format"),
        ({"text": "Hi", "voice": "no-such-voice"}, 422, "unknown_voice"),
        ({"text": "Hi", "language": "xx"}, 422, "unsupported_language"),
        ({"text": "Hi", "language": "not a tag"}, 422, "invalid_language"),
        ({"text": "Hi", "pitch": 2}, 422, "unknown_field"),
        ({"text": "Hi", "speed": 5}, 422, "out_of_range"),
        ({"text": "Hi", "sample_rate": 23000}, 422, "unsupported_sample_rate"),
        ({"text": "Hi", "format": "ogg", "stream": True}, 422, "format_not_streamable"),
        ({"text": "Hi", "engine_params": {"temperature": 3}}, 422, "invalid_parameter"),
        ({"text": "Hi", "engine_params": {"top_p": 0}}, 422, "invalid_parameter"),
        ({"text": "Hi", "engine_params": {"beam": 4}}, 422, "invalid_parameter"),
        ({"text": "Hi", "engine_params": {"seed": -1}}, 422, "invalid_parameter"),
        ({"text": "Hi", "metadata": "not an object"}, 422, "invalid_type"),
        ({"text": "Hi", "metadata": {"blob": "x" * 20_000}}, 422, "metadata_too_large"),
        ([1, 2], 422, "invalid_body"),
    ],
)
def test_bad_input_is_refused_with_a_code_and_nothing_is_queued(
    client: httpx.Client, live: Live, body: Any, status: int, code: str
) -> None:
    before = (queued_messages(live), job_count(live))
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == code
    assert problem["status"] == status
    assert problem["detail"]  # a message a person can act on
    assert (queued_messages(live), job_count(live)) == before


def test_malformed_json_is_a_400(client: httpx.Client, live: Live) -> None:
    before = queued_messages(live)
    response = client.post(
        "/v1/jobs", content=b'{"text": "Hi",', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"
    assert queued_messages(live) == before


def test_a_body_too_large_is_a_413(client: httpx.Client, live: Live) -> None:
    before = queued_messages(live)
    response = client.post("/v1/jobs", json={"text": "Hi", "metadata": {"x": "y" * (2 << 20)}})
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"
    # A body streamed without Content-Length is cut off too.
    chunks = (b'{"text": "' + b"a" * 65536 for _ in range(40))
    response = client.post("/v1/jobs", content=chunks, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert queued_messages(live) == before


def test_unknown_job_is_a_404(client: httpx.Client) -> None:
    for path in ("/v1/jobs/job_nope", "/v1/jobs/job_nope/audio"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["code"] == "job_not_found"
    response = client.post("/v1/jobs/job_nope/cancel")
    assert response.status_code == 404


def test_unknown_route_is_a_problem_too(client: httpx.Client) -> None:
    response = client.get("/v2/nothing")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_submit_poll_and_download(client: httpx.Client) -> None:
    response = client.post("/v1/jobs", json={"text": "Hello from shoal.", "metadata": {"k": 1}})
    assert response.status_code == 202
    job = response.json()
    assert job["status"] in {"queued", "running", "succeeded"}
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["metadata"] == {"k": 1}
    done = wait_for_job(client, job["id"])
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 1
    assert done["started_at"] <= done["finished_at"]
    audio = done["audio"]
    assert audio["format"] == "wav" and audio["sample_rate"] == 22050
    assert audio["expires_at"] > done["finished_at"]
    # The presigned URL works for a plain client, and the redirect points at it.
    data = httpx.get(audio["url"]).content
    assert len(data) == audio["bytes"]
    assert abs(decode(data).duration - audio["duration_seconds"]) < 0.01
    redirect = client.get(f"/v1/jobs/{job['id']}/audio")
    assert redirect.status_code == 307
    assert httpx.get(redirect.headers["location"]).content == data


def test_prefer_wait_returns_the_finished_job(client: httpx.Client) -> None:
    response = client.post("/v1/jobs", json={"text": "Quick."}, headers={"Prefer": "wait=20"})
    assert response.status_code == 200
    assert response.json()["status"] == "succeeded"
    assert response.headers["preference-applied"] == "wait=20"


def test_idempotency_key_replays_the_job(client: httpx.Client) -> None:
    headers = {"Idempotency-Key": f"test-{time.time()}"}
    first = client.post("/v1/jobs", json={"text": "Once."}, headers=headers)
    second = client.post("/v1/jobs", json={"text": "Once."}, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["idempotent-replayed"] == "true"
    conflict = client.post("/v1/jobs", json={"text": "Twice?"}, headers=headers)
    assert conflict.status_code == 422  # the IETF Idempotency-Key draft's answer
    assert conflict.json()["code"] == "idempotency_key_reused"


def test_a_replay_while_the_first_request_still_waits_is_409(env: Env) -> None:
    replaying = {"Idempotency-Key": "slow-order"}
    headers = {**replaying, "Prefer": "wait=3"}
    with gateway(env) as url, httpx.Client(base_url=url, timeout=30) as http:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(http.post, "/v1/jobs", json={"text": "Hi"}, headers=headers)
            deadline = time.monotonic() + 10
            while not http.get("/v1/queue").json()["queues"]["tts"]["waiting"]:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            busy = http.post(
                "/v1/jobs", json={"text": "Hi"}, headers={"Idempotency-Key": "slow-order"}
            )
            assert busy.status_code == 409, busy.text
            assert busy.json()["code"] == "idempotency_request_in_progress"
            original = first.result()
        assert original.status_code == 202  # no worker: still queued after its wait
        replay = http.post(
            "/v1/jobs", json={"text": "Hi"}, headers={"Idempotency-Key": "slow-order"}
        )
        assert replay.status_code == 202 and replay.json()["id"] == original.json()["id"]


def test_without_workers_a_job_waits_and_can_be_canceled(env: Env) -> None:
    with gateway(env) as url, httpx.Client(base_url=url) as http:
        job = http.post("/v1/jobs", json={"text": "Never mind."}).json()
        assert job["status"] == "queued"
        assert http.get("/v1/queue").json()["queues"]["tts"]["waiting"] == 1
        pending = http.get(f"/v1/jobs/{job['id']}/audio")
        assert pending.status_code == 409 and pending.json()["code"] == "job_not_finished"

        canceled = http.post(f"/v1/jobs/{job['id']}/cancel")
        assert canceled.status_code == 200
        # Its message left the queue: KEDA does not scale up to drain a canceled job.
        assert http.get("/v1/queue").json()["queues"]["tts"]["waiting"] == 0
        assert canceled.json()["status"] == "canceled"
        assert canceled.json()["error"]["code"] == "canceled"
        assert canceled.json()["finished_at"] is not None
        assert http.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200  # idempotent
        no_audio = http.get(f"/v1/jobs/{job['id']}/audio")
        assert no_audio.status_code == 409 and no_audio.json()["code"] == "job_has_no_audio"


def test_a_finished_job_cannot_be_canceled(client: httpx.Client) -> None:
    job = client.post("/v1/jobs", json={"text": "Done."}, headers={"Prefer": "wait=20"}).json()
    assert job["status"] == "succeeded"
    response = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 409
    assert response.json()["code"] == "job_finished"


def test_api_keys_are_enforced(live: Live) -> None:
    with gateway(live.env.with_(SHOAL_API_KEYS="k1,k2")) as url:
        anonymous = httpx.post(f"{url}/v1/jobs", json={"text": "Hi"})
        assert anonymous.status_code == 401
        assert anonymous.json()["code"] == "unauthorized"
        assert anonymous.headers["www-authenticate"] == "Bearer"
        wrong = httpx.get(f"{url}/v1/queue", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        for key in ("k1", "k2"):
            ok = httpx.post(
                f"{url}/v1/jobs", json={"text": "Hi"}, headers={"Authorization": f"Bearer {key}"}
            )
            assert ok.status_code == 202
        assert httpx.get(f"{url}/healthz").status_code == 200  # probes stay open


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ('{"text": "a\\u0000b"}', "invalid_text"),  # NUL: espeak would stop reading there
        ('{"text": "ring \\u0007 bell"}', "invalid_text"),
        ('{"text": "esc \\u001b[31m"}', "invalid_text"),
        ('{"text": "\\ud800 lone surrogate"}', "invalid_text"),
        ('{"text": "Hi", "metadata": {"k": "\\udfff"}}', "invalid_metadata"),
        ('{"text": "Hi", "voice": "\\ud800"}', "invalid_value"),
        ('{"text": "' + "a" * 10_000 + '"}', "text_too_long"),  # one 10,000-character word
    ],
    ids=["nul", "bell", "escape", "surrogate", "metadata-surrogate", "voice-surrogate", "10k-word"],
)
def test_unspeakable_text_is_refused_with_a_code(
    client: httpx.Client, live: Live, raw: str, code: str
) -> None:
    before = (queued_messages(live), job_count(live))
    response = client.post("/v1/jobs", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    assert (queued_messages(live), job_count(live)) == before


@pytest.mark.parametrize(
    "text",
    [
        "Right\u202eto\u202cleft override, and an Arabic \u200fmark.",  # bidi controls
        "Hello \U0001f44b\U0001f3fd and \U0001f468\u200d\U0001f469\u200d\U0001f467!",  # emoji, ZWJ
        "Cafe\u0301 with combining marks: a\u0300\u0301\u0302\u0303.",
        "Hello, Привет, 你好, مرحبا, שלום, नमस्ते.",  # mixed scripts
        "Tabs\tand\nnew\r\nlines.",
    ],
    ids=["bidi", "emoji", "combining", "mixed-scripts", "whitespace-controls"],
)
def test_unusual_but_real_text_is_spoken(client: httpx.Client, text: str) -> None:
    response = client.post("/v1/jobs", json={"text": text})
    assert response.status_code == 202, response.text
    assert response.json()["input"]["text"] == text  # stored and echoed exactly
    done = wait_for_job(client, response.json()["id"])
    assert done["status"] == "succeeded", done
    assert done["audio"]["duration_seconds"] > 0.3
