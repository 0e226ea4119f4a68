"""A headless Locust run of a few seconds against a real gateway and worker: no failures,
every job's audio downloaded and decoded, the custom JOB entries recorded."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import gevent
import httpx
import pytest
import redis

from loadtest.receiver import Receiver
from loadtest.shapes import SHAPES
from shoal.webhooks import new_secret, signed_headers
from tests.conftest import Live
from tests.support import Env, gateway, running, start_worker_spec, wait_for_worker

LOCUSTFILE = Path(__file__).resolve().parents[2] / "loadtest" / "locustfile.py"


def headless(tmp_path: Path, url: str, *options: str) -> dict[tuple[str, str], dict[str, str]]:
    """Run Locust for 8 s with 2 users; its stats by (type, name)."""
    argv = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", url,
        "--shape", "steady", "--shape-peak", "2", "--shape-seconds", "8",
        "--csv", str(tmp_path / "run"), "--job-deadline", "60", "--only-summary", *options,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "LOCUST_SKIP_MONKEY_PATCH"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with (tmp_path / "run_stats.csv").open() as file:
        return {(r["Type"], r["Name"]): r for r in csv.DictReader(file)}


def test_a_short_headless_run_has_no_failures(tmp_path: Path, live: Live) -> None:
    jobs = tmp_path / "jobs.txt"
    stats = headless(tmp_path, live.url, "--jobs-log", str(jobs), "--formats", "wav,mp3,ogg,flac")
    assert stats[("", "Aggregated")]["Failure Count"] == "0"
    submitted = int(stats[("POST", "submit")]["Request Count"])
    ended = int(stats[("JOB", "time to audio")]["Request Count"])
    assert submitted >= 2 and ended >= 1
    assert int(stats[("GET", "audio")]["Request Count"]) == ended  # each decoded (no failure)
    for entry in ("queue wait", "synthesis"):
        assert int(stats[("JOB", entry)]["Request Count"]) == ended
    # Each accepted job is logged; the stats CSV is written as the users stop, so a
    # submit that each of the 2 users completes in that instant may be logged only.
    assert submitted <= len(jobs.read_text().split()) <= submitted + 2


def test_the_webhook_receiver_hands_verified_events_to_the_waiting_user() -> None:
    secret = new_secret()
    receiver = Receiver("127.0.0.1", 0, [secret])
    receiver.start()
    try:
        url = f"http://127.0.0.1:{receiver.port}/hooks"

        def deliver(job_id: str, secrets: list[str]) -> int:
            body = json.dumps(
                {"type": "job.succeeded", "timestamp": "2026-12-01T00:00:00Z",
                 "data": {"id": job_id, "status": "succeeded"}}
            ).encode()  # fmt: skip
            headers = signed_headers("msg_1", body, secrets)
            return httpx.post(url, content=body, headers=headers).status_code

        # Delivered before anyone waits (a fast job): kept until asked for.
        assert gevent.get_hub().threadpool.apply(deliver, ("job_a", [secret])) == 204
        assert receiver.wait("job_a", timeout=5) == {"id": "job_a", "status": "succeeded"}
        # Forged: refused, and nobody is handed it.
        assert gevent.get_hub().threadpool.apply(deliver, ("job_b", [new_secret()])) == 400
        assert receiver.rejected == 1
        started = time.monotonic()
        assert receiver.wait("job_b", timeout=0.5) is None
        assert time.monotonic() - started >= 0.5
    finally:
        receiver.stop()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # base 1, peak 11 over 100 s
        ("steady", {0: 11, 50: 11, 99: 11}),
        ("step", {0: 1, 20: 3, 40: 6, 60: 9, 99: 11}),  # 1 + round(10 x step / 4)
        ("spike", {0: 1, 14: 1, 15: 11, 49: 11, 50: 1, 99: 1}),
        # 1 + round(10 x share): 0 h 0.15, 3 h 0.07, 12 h 0.75, 18.96 h 0.95..1.00 -> 0.998
        ("day", {0: 3, 12.5: 2, 50: 9, 79: 11}),
    ],
)
def test_shapes(name: str, expected: dict[float, int]) -> None:
    shape = SHAPES[name](base=1, peak=11, seconds=100)
    assert {t: shape.users_at(t) for t in expected} == expected
    shape.start_time -= 100  # its time is up: the test ends
    assert shape.tick() is None


def test_users_can_wait_for_webhooks_instead_of_polling(tmp_path: Path, env: Env) -> None:
    secret = new_secret()
    signed = env.with_(SHOAL_WEBHOOK_SECRET=secret, SHOAL_WEBHOOK_ALLOW_HOSTS="127.0.0.1")
    workers = [("tts-hooks@tests", "tts"), ("webhooks-hooks@tests", "webhooks")]
    with ExitStack() as stack:
        for name, queue in workers:
            stack.enter_context(running(start_worker_spec(signed, name, queue)))
        url = stack.enter_context(gateway(signed))
        client = redis.Redis.from_url(signed.values["SHOAL_REDIS_URL"])
        for name, _ in workers:
            wait_for_worker(client, name, timeout=60)
        stats = headless(tmp_path, url, "--completion", "webhook", "--webhook-secret", secret)
    assert stats[("", "Aggregated")]["Failure Count"] == "0"
    ended = int(stats[("JOB", "time to audio")]["Request Count"])
    assert ended >= 1 and int(stats[("GET", "audio")]["Request Count"]) == ended
    assert ("GET", "poll") not in stats  # nobody polled
