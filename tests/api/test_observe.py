"""Request ids: taken from the client or made, echoed, stored with the job."""

from __future__ import annotations

import re

import httpx

from shoal import keys
from tests.conftest import Live


def test_a_client_request_id_is_echoed_and_stored_with_the_job(
    client: httpx.Client, live: Live
) -> None:
    response = client.post("/v1/jobs", json={"text": "Hi."}, headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 202
    assert response.headers["x-request-id"] == "abc-123"
    assert live.redis.hget(keys.job(response.json()["id"]), "request_id") == "abc-123"


def test_without_one_the_gateway_makes_one(client: httpx.Client, live: Live) -> None:
    first = client.post("/v1/jobs", json={"text": "Hi."})
    second = client.post("/v1/jobs", json={"text": "Hi."})
    made = first.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert made != second.headers["x-request-id"]
    assert live.redis.hget(keys.job(first.json()["id"]), "request_id") == made


def test_an_unsafe_request_id_is_replaced(client: httpx.Client) -> None:
    for unsafe in ("has spaces", "x" * 129, "semi;colon"):
        response = client.get("/v1/queue", headers={"X-Request-ID": unsafe})
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"]), unsafe


def test_errors_and_probes_carry_an_id_too(client: httpx.Client) -> None:
    missing = client.get("/v1/jobs/job_nope", headers={"X-Request-ID": "trace-404"})
    assert missing.status_code == 404
    assert missing.headers["x-request-id"] == "trace-404"
    assert client.get("/healthz").headers["x-request-id"]


def test_the_api_reference_loads_nothing_from_elsewhere(client: httpx.Client) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        external = re.findall(r"""(?:src|href)=["']?(https?:)?//""", html)
        assert not external, (page, html)
        assets = re.findall(r"""(?:src|href)=["']?(/[^"' >]+\.js)""", html)
        assert assets, html
        for asset in assets:
            assert client.get(asset).status_code == 200, asset
