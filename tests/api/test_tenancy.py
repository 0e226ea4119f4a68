"""API keys and tenancy through a real gateway: static and managed keys, owners, /metrics.

Two static keys (alice, bob) and a managed one made with `shoal keys create`;
no worker, so jobs stay where the test puts them.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis

from shoal import keys
from shoal.local.redis_server import RedisServer
from shoal.local.s3_server import SeaweedS3
from tests.conftest import fresh_env
from tests.support import Env, gateway, recording

ALICE, BOB, METRICS = "alice-key-0123456789", "bob-key-0123456789", "scrape-me-0123456789"


@dataclass
class Tenants:
    url: str
    env: Env

    def as_(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def tenants(redis_server: RedisServer, s3_server: SeaweedS3) -> Iterator[Tenants]:
    env = fresh_env(redis_server, s3_server).with_(
        SHOAL_API_KEYS=f"{ALICE},{BOB}", SHOAL_METRICS_TOKEN=METRICS
    )
    with gateway(env) as url:
        yield Tenants(url, env)


def shoal_keys(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shoal.cli", "keys", *args],
        env=env.full(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_keys_are_required(tenants: Tenants) -> None:
    for key in (None, "wrong-key"):
        with tenants.as_(key) as http:
            response = http.post("/v1/jobs", json={"text": "Hi"})
            assert response.status_code == 401
            assert response.json()["code"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"
            assert http.get("/v1/voices").status_code == 401


def test_another_keys_job_is_a_404_for_every_call(tenants: Tenants) -> None:
    with tenants.as_(ALICE) as alice, tenants.as_(BOB) as bob:
        job_id = alice.post("/v1/jobs", json={"text": "Mine."}).json()["id"]
        assert alice.get(f"/v1/jobs/{job_id}").status_code == 200
        for method, path in [
            ("GET", f"/v1/jobs/{job_id}"),
            ("GET", f"/v1/jobs/{job_id}/audio"),
            ("GET", f"/v1/jobs/{job_id}/stream"),
            ("POST", f"/v1/jobs/{job_id}/cancel"),
            ("POST", f"/v1/jobs/{job_id}/webhook/redeliver"),
        ]:
            response = bob.request(method, path)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["code"] == "job_not_found"
        assert alice.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"  # not canceled


def test_an_idempotency_key_is_per_api_key(tenants: Tenants) -> None:
    headers = {"Idempotency-Key": "same-key-for-both"}
    with tenants.as_(ALICE) as alice, tenants.as_(BOB) as bob:
        first = alice.post("/v1/jobs", json={"text": "Same."}, headers=headers).json()["id"]
        second = bob.post("/v1/jobs", json={"text": "Same."}, headers=headers).json()["id"]
    assert first != second


def test_another_keys_voice_is_invisible(tenants: Tenants) -> None:
    with tenants.as_(ALICE) as alice, tenants.as_(BOB) as bob:
        made = alice.post(
            "/v1/voices",
            files={"audio": ("me.wav", recording(3.0), "audio/wav")},
            data={"transcript": "What the recording says."},
        )
        assert made.status_code == 201, made.text
        voice_id = made.json()["id"]
        assert voice_id in [v["id"] for v in alice.get("/v1/voices").json()["cloned_voices"]]
        assert voice_id not in [v["id"] for v in bob.get("/v1/voices").json()["cloned_voices"]]
        assert bob.get(f"/v1/voices/{voice_id}").json()["code"] == "voice_not_found"
        assert bob.delete(f"/v1/voices/{voice_id}").status_code == 404
        used = bob.post("/v1/jobs", json={"text": "Borrowed voice.", "voice": voice_id})
        assert used.status_code == 422
        assert used.json()["code"] == "unknown_voice"
        assert alice.get(f"/v1/voices/{voice_id}").status_code == 200  # still there
        assert alice.delete(f"/v1/voices/{voice_id}").status_code == 204


def test_a_managed_key_works_at_once_and_stops_at_once(tenants: Tenants) -> None:
    made = shoal_keys(tenants.env, "create", "--name", "ci-runner")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("shk_") and "ci-runner" in made.stderr
    listed = shoal_keys(tenants.env, "list")
    assert "ci-runner" in listed.stderr and key not in listed.stdout + listed.stderr
    key_id = next(word for word in listed.stderr.split() if word.startswith("key_"))
    with tenants.as_(key) as managed, tenants.as_(ALICE) as alice:
        job_id = managed.post("/v1/jobs", json={"text": "Managed."}).json()["id"]
        assert managed.get(f"/v1/jobs/{job_id}").status_code == 200
        assert alice.get(f"/v1/jobs/{job_id}").status_code == 404  # its own tenant
        assert shoal_keys(tenants.env, "revoke", key_id).returncode == 0
        assert managed.get(f"/v1/jobs/{job_id}").status_code == 401  # the very next request
    assert shoal_keys(tenants.env, "revoke", key_id).returncode == 1  # already gone


def test_only_the_digest_of_a_managed_key_is_stored(tenants: Tenants) -> None:
    key = shoal_keys(tenants.env, "create", "--name", "audit").stdout.strip()
    client = redis.Redis.from_url(tenants.env.values["SHOAL_REDIS_URL"], decode_responses=True)
    stored = []
    for name in client.scan_iter(f"{keys.PREFIX}:*"):
        kind = client.type(name)
        if kind in ("hash", "string"):
            stored.append(name + str(client.hgetall(name) if kind == "hash" else client.get(name)))
    client.close()
    assert any("audit" in value for value in stored)
    assert not any(key in value or key[4:] in value for value in stored)


def test_metrics_need_their_token(tenants: Tenants) -> None:
    with tenants.as_(None) as anonymous, tenants.as_(METRICS) as scraper:
        assert anonymous.get("/metrics").status_code == 401
        with tenants.as_(ALICE) as alice:
            assert alice.get("/metrics").status_code == 401  # an API key is not the token
        scrape = scraper.get("/metrics")
        assert scrape.status_code == 200 and "shoal_queue_waiting" in scrape.text


def test_the_openapi_document_says_keys_are_required(tenants: Tenants) -> None:
    with tenants.as_(None) as anonymous:
        spec = anonymous.get("/openapi.json").json()
    assert spec["paths"]["/v1/jobs"]["post"]["security"] == [{"HTTPBearer": []}]
    assert spec["paths"]["/metrics"]["get"]["security"] == [{"MetricsToken": []}]


def test_with_auth_off_nothing_asks_for_a_key(env: Env) -> None:
    with gateway(env) as url:
        spec = httpx.get(f"{url}/openapi.json").json()
        assert httpx.get(f"{url}/metrics").status_code == 200
    assert all(
        "security" not in operation
        for path in spec["paths"].values()
        for operation in path.values()
    )
    assert (
        "securitySchemes" not in spec.get("components", {})
        or not spec["components"]["securitySchemes"]
    )
