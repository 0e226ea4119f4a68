"""`shoal up --autoscale` under a burst: out to more than one worker, back to the
minimum after the cooldown, every job succeeded once (real processes throughout)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from shoal import keys
from shoal.local.ports import free_port
from shoal.storage import Storage
from tests.shoal.local.autoscale.manifests import behavior, scaled_object
from tests.support import Env, storage_settings, stream_fields, wait_for_job

READY_LINE = "shoal is ready"
# About 3 s of speech: at 1.5x real time one job holds a worker about 4.5 s, so a
# burst of 14 is a minute of work for one worker: the queue builds up for sure.
SENTENCE = "Shoal scales its workers out when the queue grows, and back in after it drains."
BURST = 14


def fast_profile(path: Path) -> Path:
    """The production shape with windows short enough for a test."""
    obj = scaled_object(
        pollingInterval=1,
        cooldownPeriod=5,
        minReplicaCount=1,
        maxReplicaCount=3,
        advanced=behavior(
            scaleDown={
                "stabilizationWindowSeconds": 5,
                "selectPolicy": "Min",
                "policies": [{"type": "Pods", "value": 1, "periodSeconds": 2}],
            }
        ),
    )
    path.write_text(yaml.safe_dump(obj))
    return path


@contextmanager
def shoal_up_autoscaled(tmp_path: Path, env: Env) -> Iterator[str]:
    port = free_port()
    full = env.with_(
        SHOAL_PORT=str(port), SHOAL_DATA_DIR=str(tmp_path / "data"), SHOAL_EMULATE_RTF="1.5"
    ).full()
    log = tmp_path / "up.log"
    argv = [sys.executable, "-m", "shoal.cli", "up", "--scaledobject"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*argv, str(fast_profile(tmp_path / "so.yaml"))], env=full, stdout=output, stderr=output
        )
    try:
        deadline = time.monotonic() + 120
        while READY_LINE not in log.read_text(errors="replace"):
            if process.poll() is not None:
                pytest.fail(f"shoal up exited with {process.returncode}:\n{log.read_text()}")
            assert time.monotonic() < deadline, "shoal up did not become ready"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def eventually(
    http: httpx.Client, condition: Callable[[dict[str, Any]], bool], timeout: float, what: str
) -> list[dict[str, Any]]:
    """Sample the autoscaler until `condition` holds; the samples seen."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        status = http.get("/v1/queue").json()["autoscaler"]
        if status:
            seen.append(status)
            if condition(status):
                return seen
        assert time.monotonic() < deadline, f"{what}: last {status}"
        time.sleep(0.5)


def test_a_burst_scales_out_and_back_in_with_every_job_done_once(
    tmp_path: Path, env: Env, sync_redis: redis.Redis
) -> None:
    with shoal_up_autoscaled(tmp_path, env) as url, httpx.Client(base_url=url, timeout=30) as http:
        first = http.get("/v1/queue").json()["autoscaler"]
        assert first["desired"] == 1 and first["min_replicas"] == 1
        ids = [http.post("/v1/jobs", json={"text": SENTENCE}).json()["id"] for _ in range(BURST)]
        out = eventually(http, lambda s: s["ready"] >= 2, 120, "never more than one worker ready")
        assert max(s["desired"] for s in out) >= 2 and all(s["desired"] <= 3 for s in out)
        jobs = [wait_for_job(http, job_id, timeout=240) for job_id in ids]
        assert [j["status"] for j in jobs] == ["succeeded"] * BURST
        back = eventually(
            http,
            lambda s: s["desired"] == s["current"] == s["ready"] == 1 and not s["retiring"],
            120,
            "never back to the minimum",
        )
        assert back[-1]["metric"] == 0
    # None ran twice: one attempt each, one audio object each, one completion each.
    assert all(j["attempts"] == 1 for j in jobs)
    storage = Storage(storage_settings(env))
    for job_id in ids:
        assert len(storage.keys(f"audio/{job_id}/")) == 1, job_id
    ended = [fields["job"] for fields in stream_fields(sync_redis, keys.COMPLETIONS)]
    assert sorted(ended) == sorted(ids)
