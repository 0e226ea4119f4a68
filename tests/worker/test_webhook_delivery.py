"""Webhooks end to end: gateway, worker, `webhooks` queue, webhook worker, a real receiver."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import standardwebhooks

from shoal import keys
from shoal.local.ports import free_port
from shoal.local.redis_server import RedisServer
from shoal.local.s3_server import SeaweedS3
from shoal.webhooks import new_secret
from tests.conftest import FAST, fresh_env
from tests.receiver import Receiver, receiver
from tests.support import Env, gateway, running, start_worker_spec, wait_for_worker

SECRET = new_secret()
WEBHOOK_SETTINGS = {
    "SHOAL_WEBHOOK_SECRET": SECRET,
    "SHOAL_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
    "SHOAL_WEBHOOK_RETRY_SCHEDULE": "0.2,0.4,0.6",
    "SHOAL_WEBHOOK_TIMEOUT_SECONDS": "1",
}


@dataclass
class Stack:
    http: httpx.Client
    hooks: Receiver
    redis: redis.Redis
    env: Env

    def submit(self, path: str, events: list[str] | None = None, text: str = "Hi.") -> str:
        webhook: dict[str, Any] = {"url": self.hooks.url + path}
        if events is not None:
            webhook["events"] = events
        response = self.http.post("/v1/jobs", json={"text": text, "webhook": webhook})
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def webhook(self, job_id: str, states: set[str], timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job: dict[str, Any] = self.http.get(f"/v1/jobs/{job_id}").json()
            if job["webhook"]["state"] in states:
                return job
            assert time.monotonic() < deadline, job
            time.sleep(0.05)


@contextmanager
def webhook_stack(env: Env) -> Iterator[Stack]:
    """A gateway, a synthesis worker, a webhook worker and a receiver on `env`."""
    client = redis.Redis.from_url(env.values["SHOAL_REDIS_URL"], decode_responses=True)
    with ExitStack() as stack:
        hooks = stack.enter_context(receiver())
        url = stack.enter_context(gateway(env))
        stack.enter_context(running(start_worker_spec(env, "tts-hooks@tests")))
        stack.enter_context(running(start_worker_spec(env, "webhooks-1@tests", keys.WEBHOOK_QUEUE)))
        wait_for_worker(client, "tts-hooks@tests")
        wait_for_worker(client, "webhooks-1@tests")
        http = stack.enter_context(httpx.Client(base_url=url, timeout=30))
        yield Stack(http, hooks, client, env)
    client.close()


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, s3_server: SeaweedS3) -> Iterator[Stack]:
    with webhook_stack(fresh_env(redis_server, s3_server).with_(**WEBHOOK_SETTINGS)) as built:
        yield built


def test_a_signed_event_reaches_the_receiver(stack: Stack) -> None:
    job_id = stack.submit("/ok")
    job = stack.webhook(job_id, {"delivered"})
    [hit] = (
        stack.hooks.to("/ok") if len(stack.hooks.to("/ok")) == 1 else _for_job(stack, "/ok", job_id)
    )
    # An independent Standard Webhooks implementation accepts the signature.
    payload = standardwebhooks.Webhook(SECRET).verify(hit.body, hit.headers)
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["id"] == job_id
    assert payload["data"]["status"] == "succeeded"
    assert payload["timestamp"].endswith("Z")
    audio = httpx.get(payload["data"]["audio"]["url"])  # a fresh presigned URL that works
    assert audio.status_code == 200 and audio.content[:4] == b"RIFF"
    assert hit.headers["webhook-id"].startswith("msg_")
    assert job["webhook"]["state"] == "delivered"
    assert job["webhook"]["attempts"] == 1
    assert job["webhook"]["last_status_code"] == 200
    assert job["webhook"]["event"] == "job.succeeded"


def _for_job(stack: Stack, path: str, job_id: str) -> list[Any]:
    return [r for r in stack.hooks.to(path) if json.loads(r.body)["data"]["id"] == job_id]


def test_started_and_terminal_events_when_subscribed(stack: Stack) -> None:
    job_id = stack.submit("/both", events=["job.started", "job.succeeded"])
    stack.webhook(job_id, {"delivered"})
    deadline = time.monotonic() + 10
    while len(_for_job(stack, "/both", job_id)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    types = sorted(json.loads(r.body)["type"] for r in _for_job(stack, "/both", job_id))
    assert types == ["job.started", "job.succeeded"]
    ids = {r.headers["webhook-id"] for r in _for_job(stack, "/both", job_id)}
    assert len(ids) == 2  # one id per event


def test_a_receiver_down_twice_gets_the_event_once_it_recovers(stack: Stack) -> None:
    job_id = stack.submit("/flaky/2")
    job = stack.webhook(job_id, {"delivered"})
    hits = _for_job(stack, "/flaky/2", job_id)
    assert [h.status for h in hits] == [503, 503, 200]  # delivered exactly once
    assert len({h.headers["webhook-id"] for h in hits}) == 1  # the same id on every retry
    assert job["webhook"]["attempts"] == 3
    assert hits[1].at - hits[0].at >= 0.15  # backed off (0.2 s +- 20 %)


def test_retry_after_is_honoured(stack: Stack) -> None:
    job_id = stack.submit("/throttle")
    stack.webhook(job_id, {"delivered"})
    first, second = _for_job(stack, "/throttle", job_id)
    assert first.status == 429 and second.status == 200
    assert second.at - first.at >= 0.95  # Retry-After: 1 beats the 0.2 s schedule


def test_410_disables_the_url(stack: Stack) -> None:
    job_id = stack.submit("/gone")
    job = stack.webhook(job_id, {"disabled"})
    assert job["webhook"]["last_status_code"] == 410
    assert len(_for_job(stack, "/gone", job_id)) == 1  # never retried
    # Later jobs to that URL are not sent at all.
    later = stack.submit("/gone")
    assert stack.webhook(later, {"disabled"})["webhook"]["attempts"] == 0
    assert _for_job(stack, "/gone", later) == []


def test_a_slow_receiver_times_out_and_is_given_up_on(stack: Stack) -> None:
    job_id = stack.submit("/slow")
    job = stack.webhook(job_id, {"failed"}, timeout=30)
    assert job["webhook"]["attempts"] == 4  # the first try and three retries
    assert "no HTTP response from the receiver within 1 s" in job["webhook"]["last_error"]
    assert "gave up after 4 attempts" in job["webhook"]["last_error"]


def test_redirects_are_not_followed(stack: Stack) -> None:
    before = len(stack.hooks.to("/ok"))
    job_id = stack.submit("/redirect")
    job = stack.webhook(job_id, {"failed"})
    assert job["webhook"]["last_status_code"] == 302
    assert "not followed" in job["webhook"]["last_error"]
    assert len(_for_job(stack, "/redirect", job_id)) == 1
    assert len(stack.hooks.to("/ok")) == before  # the target never saw it


def test_redeliver_after_fixing_the_receiver(stack: Stack) -> None:
    job_id = stack.submit("/gone")  # disabled URL: nothing is sent
    stack.webhook(job_id, {"disabled"})
    response = stack.http.post(f"/v1/jobs/{job_id}/webhook/redeliver")
    assert response.status_code == 202
    # The receiver still answers 410 here, but the redelivery was attempted: re-enabled.
    deadline = time.monotonic() + 10
    while not _for_job(stack, "/gone", job_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_for_job(stack, "/gone", job_id)) == 1


def test_redeliver_needs_a_webhook(stack: Stack) -> None:
    plain = stack.http.post("/v1/jobs", json={"text": "No hook."}).json()
    response = stack.http.post(f"/v1/jobs/{plain['id']}/webhook/redeliver")
    assert response.status_code == 409
    assert response.json()["code"] == "no_webhook"


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.2/hook", "http://10.0.0.1/hook", "http://169.254.169.254/latest",
     "http://[::1]/hook", "http://[::ffff:192.168.0.1]/x", "http://[::ffff:127.0.0.1]/x"],
)  # fmt: skip
def test_private_targets_are_refused_at_submit(stack: Stack, url: str) -> None:
    before = stack.redis.llen(keys.TTS_QUEUE)
    response = stack.http.post("/v1/jobs", json={"text": "Hi", "webhook": {"url": url}})
    assert response.status_code == 422
    assert response.json()["code"] == "webhook_url_blocked"
    assert stack.redis.llen(keys.TTS_QUEUE) == before


@pytest.mark.parametrize("url", ["ftp://example.com/x", "not a url", "https://u:p@example.com/"])
def test_invalid_webhook_urls_are_refused(stack: Stack, url: str) -> None:
    response = stack.http.post("/v1/jobs", json={"text": "Hi", "webhook": {"url": url}})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_webhook_url"


def test_the_guard_runs_again_at_delivery(env: Env) -> None:
    # The gateway allows loopback, but the only webhook worker does not: the
    # delivery-time check (after resolution) refuses to connect.
    env = env.with_(**WEBHOOK_SETTINGS)
    strict = env.with_(SHOAL_WEBHOOK_ALLOW_HOSTS="")
    client = redis.Redis.from_url(env.values["SHOAL_REDIS_URL"], decode_responses=True)
    with ExitStack() as contexts:
        hooks = contexts.enter_context(receiver())
        url = contexts.enter_context(gateway(env))
        contexts.enter_context(running(start_worker_spec(env, "tts-guard@tests")))
        contexts.enter_context(
            running(start_worker_spec(strict, "webhooks-strict@tests", keys.WEBHOOK_QUEUE))
        )
        wait_for_worker(client, "webhooks-strict@tests")
        http = contexts.enter_context(httpx.Client(base_url=url, timeout=30))
        guarded = Stack(http, hooks, client, env)
        job = guarded.webhook(guarded.submit("/ok"), {"delivered", "failed"})
    assert job["webhook"]["state"] == "failed", job
    assert "non-public address" in job["webhook"]["last_error"]
    assert not hooks.requests  # nothing ever reached the receiver
    client.close()


def test_webhooks_need_a_secret(stack: Stack) -> None:
    with gateway(stack.env.with_(SHOAL_WEBHOOK_SECRET="")) as url:
        response = httpx.post(
            f"{url}/v1/jobs", json={"text": "Hi", "webhook": {"url": stack.hooks.url + "/ok"}}
        )
    assert response.status_code == 503
    assert response.json()["code"] == "webhooks_not_configured"


def test_a_scheduled_retry_survives_worker_and_redis_restarts(
    s3_server: SeaweedS3, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "redis", free_port(), durable=True)  # AOF, as in production
    env = Env({**FAST, **s3_server.env(), **WEBHOOK_SETTINGS}).with_(
        SHOAL_REDIS_URL=server.url, SHOAL_S3_BUCKET="shoal-tests", SHOAL_WEBHOOK_RETRY_SCHEDULE="3"
    )
    client = redis.Redis.from_url(server.url, decode_responses=True)
    webhook_worker = start_worker_spec(env, "webhooks-doomed@tests", keys.WEBHOOK_QUEUE)
    with ExitStack() as stack:
        hooks = stack.enter_context(receiver())
        redis_process = stack.enter_context(running(server.spec()))
        server.wait_ready()
        url = stack.enter_context(gateway(env))
        stack.enter_context(running(start_worker_spec(env, "tts-r@tests")))
        doomed = stack.enter_context(running(webhook_worker))
        http = stack.enter_context(httpx.Client(base_url=url, timeout=30))
        job_id = http.post(
            "/v1/jobs", json={"text": "Hi.", "webhook": {"url": hooks.url + "/flaky/1"}}
        ).json()["id"]
        deadline = time.monotonic() + 20
        while not client.zcard(keys.WEBHOOKS_SCHEDULED):  # first attempt failed, retry waiting
            assert time.monotonic() < deadline
            time.sleep(0.05)

        doomed.kill()
        redis_process.terminate()  # Redis stops (flushing its AOF) and comes back
        redis_process.wait()
        stack.enter_context(running(server.spec()))
        server.wait_ready()
        stack.enter_context(
            running(start_worker_spec(env, "webhooks-new@tests", keys.WEBHOOK_QUEUE))
        )

        deadline = time.monotonic() + 30
        while True:
            job = http.get(f"/v1/jobs/{job_id}")
            if job.status_code == 200 and job.json()["webhook"]["state"] == "delivered":
                break
            assert time.monotonic() < deadline, job.text
            time.sleep(0.1)
    assert [h.status for h in hooks.to("/flaky/1")] == [503, 200]
    assert job.json()["webhook"]["attempts"] == 2
    client.close()


def test_retries_past_the_jobs_expiry_end_the_delivery_at_once_saying_why(
    redis_server: RedisServer, s3_server: SeaweedS3
) -> None:
    # The job lives 60 s; the second retry would come after 120 s: it cannot be sent
    # (its body is the job), so the delivery fails now, with the reason, instead of
    # staying `pending` until a retry that finds no job is silently dropped.
    env = (
        fresh_env(redis_server, s3_server)
        .with_(**WEBHOOK_SETTINGS)
        .with_(SHOAL_RETENTION_SECONDS="60", SHOAL_WEBHOOK_RETRY_SCHEDULE="0.2,120")
    )
    with webhook_stack(env) as short:
        job_id = short.submit("/flaky/9")
        job = short.webhook(job_id, {"failed"})
        scheduled = short.redis.zrange(keys.WEBHOOKS_SCHEDULED, 0, -1)
    assert job["webhook"]["attempts"] == 2  # the first try and the 0.2 s retry
    assert "would come after the job expires" in job["webhook"]["last_error"]
    assert "SHOAL_RETENTION_SECONDS" in job["webhook"]["last_error"]
    assert job["webhook"]["next_attempt_at"] is None
    assert not [message for message in scheduled if job_id in message]
