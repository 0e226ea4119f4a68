"""Storage away while a job uploads: the upload is retried inside the attempt, with the
synthesized audio kept; past the retry window the job is requeued with a delay, never
re-run at once until its attempts are gone."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis

from shoal import keys
from shoal.local.processes import spawn, stop
from shoal.local.s3_server import SeaweedS3
from tests.support import Env, gateway, running, start_worker_spec, wait_for_job, wait_for_worker


class Restartable:
    """A SeaweedFS of the test's own, stopped and started again on the same port and data."""

    def __init__(self, folder: Path) -> None:
        self.server = SeaweedS3(folder)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = spawn(self.server.spec())
        self.server.wait_ready()

    def stop(self) -> None:
        assert self.process is not None
        stop(self.process, timeout=10)
        self.process = None

    def objects(self, bucket: str, prefix: str) -> list[str]:
        listed = self.server.client().list_objects_v2(Bucket=bucket, Prefix=prefix)  # type: ignore[attr-defined]
        return [item["Key"] for item in listed.get("Contents", [])]


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Restartable]:
    server = Restartable(tmp_path / "s3")
    server.start()
    yield server
    if server.process is not None:
        server.stop()
    server.server.cleanup()


def _outage_env(env: Env, storage: Restartable, **overrides: str) -> Env:
    return env.with_(**storage.server.env(), SHOAL_S3_BUCKET="shoal-outage", **overrides)


@contextmanager
def _pipeline(env: Env, worker: str) -> Iterator[tuple[httpx.Client, redis.Redis]]:
    """A gateway and one worker on the env: an HTTP client of the gateway, and Redis."""
    client = redis.Redis.from_url(env.values["SHOAL_REDIS_URL"], decode_responses=True)
    spec = start_worker_spec(env, worker)
    with gateway(env) as url, httpx.Client(base_url=url) as http, running(spec):
        wait_for_worker(client, worker)
        yield http, client
    client.close()


def test_a_short_outage_is_ridden_out_within_the_attempt(env: Env, storage: Restartable) -> None:
    env = _outage_env(env, storage, SHOAL_STORAGE_RETRY_SECONDS="60")
    with _pipeline(env, "tts-patient@tests") as (http, _):
        storage.stop()
        job = http.post("/v1/jobs", json={"text": "Stored after the outage."}).json()
        wait_for_job(http, job["id"], {"running"})
        time.sleep(4)  # synthesis is done; the upload fails and is retried
        assert http.get(f"/v1/jobs/{job['id']}").json()["status"] == "running"
        storage.start()
        done = wait_for_job(http, job["id"], timeout=60)
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 1  # one synthesis: only the upload was retried
    assert storage.objects("shoal-outage", f"audio/{job['id']}/") == [f"audio/{job['id']}/1.wav"]


def test_a_longer_outage_requeues_the_job_with_a_delay(env: Env, storage: Restartable) -> None:
    env = _outage_env(
        env, storage, SHOAL_STORAGE_RETRY_SECONDS="1", SHOAL_REQUEUE_DELAY_SECONDS="3"
    )
    with _pipeline(env, "tts-requeues@tests") as (http, client):
        storage.stop()
        job = http.post("/v1/jobs", json={"text": "Stored on the second try."}).json()
        deadline = time.monotonic() + 30
        while client.zcard(keys.TTS_SCHEDULED) == 0:  # requeued, but waiting its delay
            assert time.monotonic() < deadline, http.get(f"/v1/jobs/{job['id']}").json()
            time.sleep(0.05)
        waiting = http.get(f"/v1/jobs/{job['id']}").json()
        assert waiting["status"] == "queued" and waiting["attempts"] == 1, waiting
        assert client.llen(keys.TTS_QUEUE) == 0  # not work a worker could start yet
        storage.start()
        done = wait_for_job(http, job["id"], timeout=60)
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 2
    assert storage.objects("shoal-outage", f"audio/{job['id']}/") == [f"audio/{job['id']}/2.wav"]


def test_an_outage_past_every_attempt_fails_with_a_clear_code(
    env: Env, storage: Restartable
) -> None:
    env = _outage_env(
        env,
        storage,
        SHOAL_STORAGE_RETRY_SECONDS="0.5",
        SHOAL_REQUEUE_DELAY_SECONDS="0.5",
        SHOAL_MAX_ATTEMPTS="2",
    )
    with _pipeline(env, "tts-gives-up@tests") as (http, _):
        storage.stop()
        job = http.post("/v1/jobs", json={"text": "Never stored."}).json()
        done = wait_for_job(http, job["id"], timeout=60)
    assert done["status"] == "failed" and done["attempts"] == 2, done
    assert done["error"]["code"] == "storage_unavailable"
