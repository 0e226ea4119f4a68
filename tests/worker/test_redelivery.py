"""A worker killed mid-job: the job is requeued promptly and still runs once."""

from __future__ import annotations

import time

import httpx
import redis

from shoal import keys
from shoal.local.s3_server import SeaweedS3
from shoal.queue import synthesize_message
from tests.support import Env, gateway, running, start_worker_spec, wait_for_job, wait_for_worker

LONG_TEXT = "This sentence is long enough to keep a slow worker busy for several seconds at least."


def test_a_sigkilled_worker_loses_no_job(env: Env, s3_server: SeaweedS3) -> None:
    client = redis.Redis.from_url(env.values["SHOAL_REDIS_URL"], decode_responses=True)
    slow = start_worker_spec(env.with_(SHOAL_EMULATE_RTF="3"), "tts-doomed@tests")
    with gateway(env) as url, httpx.Client(base_url=url) as http, running(slow) as doomed:
        wait_for_worker(client, "tts-doomed@tests")
        job = http.post("/v1/jobs", json={"text": LONG_TEXT}).json()
        wait_for_job(http, job["id"], {"running"})
        doomed.kill()  # SIGKILL: no warm shutdown, no ack, no goodbye
        doomed.wait()
        killed_at = time.monotonic()
        # As if it died between its upload and recording the result.
        bucket, s3 = env.values["SHOAL_S3_BUCKET"], s3_server.client()
        s3.put_object(Bucket=bucket, Key=f"audio/{job['id']}/1.wav", Body=b"RIFF")  # type: ignore[attr-defined]

        with running(start_worker_spec(env, "tts-rescuer@tests")):
            requeued = wait_for_job(http, job["id"], {"queued", "succeeded"}, timeout=15)
            assert time.monotonic() - killed_at < 10  # the lease, not the visibility timeout
            done = wait_for_job(http, job["id"], timeout=30)
            assert done["status"] == "succeeded", (requeued, done)
            assert done["attempts"] == 2

            # Only the second run's audio is left: the first run's was removed.
            objects = s3.list_objects_v2(Bucket=bucket, Prefix=f"audio/{job['id']}/")  # type: ignore[attr-defined]
            assert [o["Key"] for o in objects["Contents"]] == [f"audio/{job['id']}/2.wav"]

            # Hours later the broker would redeliver the dead worker's message:
            # the job is finished, so it is dropped without a second run.
            client.lpush(keys.TTS_QUEUE, synthesize_message(job["id"]).body)
            deadline = time.monotonic() + 10
            while client.llen(keys.TTS_QUEUE) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
            again = http.get(f"/v1/jobs/{job['id']}").json()
            assert again["attempts"] == 2 and again["finished_at"] == done["finished_at"]
    client.close()


def test_a_job_that_runs_too_long_fails_with_timeout(env: Env) -> None:
    client = redis.Redis.from_url(env.values["SHOAL_REDIS_URL"], decode_responses=True)
    stuck = env.with_(SHOAL_EMULATE_RTF="100", SHOAL_JOB_TIMEOUT_SECONDS="1")
    worker = start_worker_spec(stuck, "tts-slow@tests")
    with gateway(stuck) as url, httpx.Client(base_url=url) as http, running(worker):
        wait_for_worker(client, "tts-slow@tests")
        job = http.post("/v1/jobs", json={"text": "Hello there."}).json()
        done = wait_for_job(http, job["id"], timeout=20)
    assert done["status"] == "failed"
    assert done["error"]["code"] == "timeout"
    client.close()
