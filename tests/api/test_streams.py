"""GET /v1/jobs/{id}/stream: late readers catch up; jobs not streamed answer with their file."""

from __future__ import annotations

import httpx
import pytest

from tests.support import decode_any, wait_for_job


def test_a_streamed_job_can_be_heard_from_the_start_by_a_late_reader(
    client: httpx.Client,
) -> None:
    text = "First sentence of a streamed job. " * 6
    body = {"text": text, "format": "mp3", "stream": True}
    job = wait_for_job(client, client.post("/v1/jobs", json=body).json()["id"])
    assert job["status"] == "succeeded" and job["input"]["stream"] is True
    streamed = client.get(f"/v1/jobs/{job['id']}/stream")  # connects after the end
    assert streamed.status_code == 200
    assert streamed.headers["content-type"] == "audio/mpeg"
    audio = decode_any(streamed.content, "mp3")
    assert audio.duration == pytest.approx(job["audio"]["duration_seconds"], abs=0.1)


def test_the_stream_of_a_job_not_streamed_is_its_file(client: httpx.Client) -> None:
    job = wait_for_job(client, client.post("/v1/jobs", json={"text": "Hello."}).json()["id"])
    streamed = client.get(f"/v1/jobs/{job['id']}/stream")
    assert streamed.status_code == 200
    assert streamed.content == httpx.get(job["audio"]["url"]).content
    failed = wait_for_job(client, client.post("/v1/jobs", json={"text": "\u200b"}).json()["id"])
    refused = client.get(f"/v1/jobs/{failed['id']}/stream")
    assert refused.status_code == 422 and refused.json()["code"] == "no_speech"
    assert refused.json()["job_id"] == failed["id"]
    assert client.get("/v1/jobs/job_nope/stream").json()["code"] == "job_not_found"
