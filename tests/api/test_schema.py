"""schemathesis against a real gateway: no 5xx, and the server does what its schema says.

Every check (`--checks all`) and every phase (examples, coverage, fuzzing,
stateful), with authentication off and on, bounded in examples and time so it
fits in `make test`. The OpenAPI document is the one the gateway serves, so
any drift between schema and behaviour fails here. SHOAL_SCHEMATHESIS_SECONDS
runs longer (e.g. 300 for a deep run); the seed is fixed so a failure replays.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from shoal.webhooks import new_secret
from tests.support import Env, gateway, running, start_worker_spec, wait_for_worker

CONFIG = Path(__file__).with_name("schemathesis.toml")
SECONDS = os.environ.get("SHOAL_SCHEMATHESIS_SECONDS", "25")
KEY = "schema-test-key-0123456789"


def schemathesis(url: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    st = Path(sys.executable).with_name("st")
    return subprocess.run(
        [
            str(st), "--config-file", str(CONFIG), "run", f"{url}/openapi.json",
            "--checks", "all", "--phases", "examples,coverage,fuzzing,stateful",
            "--max-examples", "15", "--max-time", SECONDS, "--workers", "1",
            "--seed", "20261202", "--generation-database", "none", "--no-color",
            "--report", "junit", "--report-dir", str(tmp_path), *extra,
        ],
        capture_output=True, text=True, timeout=int(SECONDS) * 3 + 120,
    )  # fmt: skip


@pytest.mark.parametrize("auth", ["off", "on"])
def test_schemathesis_finds_nothing(env: Env, tmp_path: Path, auth: str) -> None:
    settings = {"SHOAL_WEBHOOK_SECRET": new_secret()}
    if auth == "on":
        settings["SHOAL_API_KEYS"] = KEY
    env = env.with_(**settings)
    name = f"tts-schema-{auth}@tests"
    with gateway(env) as url, running(start_worker_spec(env, name)):
        wait_for_worker(redis.Redis.from_url(env.values["SHOAL_REDIS_URL"]), name)
        extra = ["-H", f"Authorization: Bearer {KEY}"] if auth == "on" else []
        result = schemathesis(url, tmp_path, *extra)
    failures = result.stdout.find("=== FAILURES")
    summary = result.stdout[failures:] if failures >= 0 else result.stdout[-4000:]
    assert result.returncode == 0, summary + result.stderr[-2000:]
    assert re.search(r"[1-9]\d* generated", result.stdout), result.stdout[-2000:]  # it ran
