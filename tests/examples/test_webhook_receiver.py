"""The README's receiver really receives: a job's webhook reaches it, verified, once."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis

from shoal import keys
from shoal.local.ports import free_port, wait_for_port
from shoal.webhooks import new_secret, signed_headers
from tests.support import Env, gateway, running, start_worker_spec, wait_for_worker

RECEIVER = Path(__file__).resolve().parents[2] / "examples" / "webhook_receiver.py"


def test_the_example_receiver_verifies_and_deduplicates(env: Env, tmp_path: Path) -> None:
    secret = new_secret()
    env = env.with_(SHOAL_WEBHOOK_SECRET=secret, SHOAL_WEBHOOK_ALLOW_HOSTS="127.0.0.1")
    port = free_port()
    output = tmp_path / "receiver.log"
    client = redis.Redis.from_url(env.values["SHOAL_REDIS_URL"], decode_responses=True)
    with (
        output.open("w") as log,
        subprocess.Popen(
            [sys.executable, str(RECEIVER), "--port", str(port)],
            env=env.full(),
            stdout=log,
            stderr=subprocess.STDOUT,
        ) as process,
    ):
        try:
            assert wait_for_port(port, 20)
            hook = f"http://127.0.0.1:{port}/hooks"
            with (
                gateway(env) as url,
                running(start_worker_spec(env, "tts-ex@tests")),
                running(start_worker_spec(env, "webhooks-ex@tests", keys.WEBHOOK_QUEUE)),
            ):
                wait_for_worker(client, "webhooks-ex@tests")
                job = httpx.post(f"{url}/v1/jobs", json={"text": "Hi", "webhook": {"url": hook}})
                job_id = job.json()["id"]
                deadline = time.monotonic() + 20
                while job_id not in output.read_text():
                    assert time.monotonic() < deadline, output.read_text()
                    time.sleep(0.05)
            # A forged event is refused; a replayed one is acknowledged but not handled twice.
            body = b'{"type": "job.succeeded", "data": {"id": "job_forged", "status": "x"}}'
            forged = signed_headers("msg_forged", body, [new_secret()])
            assert httpx.post(hook, content=body, headers=forged).status_code == 400
            genuine = signed_headers("msg_twice", body, [secret])
            assert httpx.post(hook, content=body, headers=genuine).status_code == 204
            assert httpx.post(hook, content=body, headers=genuine).status_code == 204
        finally:
            process.terminate()
    lines = output.read_text().splitlines()
    assert any(line.startswith(f"job.succeeded {job_id} succeeded http://") for line in lines)
    assert sum("job_forged" in line for line in lines) == 1
    assert any(line.startswith("rejected:") for line in lines)
    client.close()
