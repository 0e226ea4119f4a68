"""`shoal jobs get|wait|cancel` and `shoal voices add|list|rm` against a real gateway."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from shoal.local.redis_server import RedisServer
from shoal.local.s3_server import SeaweedS3
from tests.conftest import Live, fresh_env
from tests.support import gateway, recording, run_cli, wait_for_job


def test_get_and_wait_print_the_job(live: Live) -> None:
    job_id = httpx.post(f"{live.url}/v1/jobs", json={"text": "Printed."}).json()["id"]
    waited = run_cli("jobs", "wait", job_id, env={"SHOAL_URL": live.url})
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["status"] == "succeeded"
    got = run_cli("jobs", "get", job_id, "--url", live.url, env={})
    assert json.loads(got.stdout)["id"] == job_id
    missing = run_cli("jobs", "get", "job_nope", env={"SHOAL_URL": live.url})
    assert missing.returncode == 1 and "job_not_found" in missing.stderr


def test_cancel_and_a_wait_that_gives_up(redis_server: RedisServer, s3_server: SeaweedS3) -> None:
    with gateway(fresh_env(redis_server, s3_server)) as url:  # no worker: the job waits
        job_id = httpx.post(f"{url}/v1/jobs", json={"text": "Never spoken."}).json()["id"]
        env = {"SHOAL_URL": url}
        gave_up = run_cli("jobs", "wait", job_id, "--timeout", "0.5", env=env)
        assert gave_up.returncode == 1 and "still queued" in gave_up.stderr
        canceled = run_cli("jobs", "cancel", job_id, env=env)
        assert canceled.returncode == 0 and json.loads(canceled.stdout)["status"] == "canceled"
        with httpx.Client(base_url=url) as http:
            assert wait_for_job(http, job_id)["status"] == "canceled"
        after = run_cli("jobs", "wait", job_id, env=env)
        assert after.returncode == 1 and json.loads(after.stdout)["status"] == "canceled"


def test_voices_add_list_rm(live: Live, tmp_path: Path) -> None:
    env = {"SHOAL_URL": live.url}
    reference = tmp_path / "me.wav"
    reference.write_bytes(recording(3.0))
    added = run_cli(
        "voices", "add", str(reference), "--transcript", "It is me.", "--name", "Me", env=env
    )
    assert added.returncode == 0, added.stderr
    voice_id = added.stdout.strip()
    assert voice_id.startswith("voice_")
    listed = run_cli("voices", "list", env=env)
    assert voice_id in listed.stdout and "cannot speak cloned voices" in listed.stderr
    assert "en-us" in run_cli("voices", "list", "--all", env=env).stdout
    assert run_cli("voices", "rm", voice_id, env=env).returncode == 0
    gone = run_cli("voices", "rm", voice_id, env=env)
    assert gone.returncode == 1 and "voice_not_found" in gone.stderr
