"""`shoal up`: starts everything, restarts a dead worker, leaves nothing behind."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from shoal.local.ports import free_port
from tests.conftest import FAST
from tests.support import assert_speech, decode, wait_for_job, weed_sockets_in_tmp

READY_LINE = "shoal is ready"


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children start their own sessions)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pids: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = {pid for pid in pids if alive(pid)}
        if not left:
            return set()
        time.sleep(0.1)
    return {pid for pid in pids if alive(pid)}


def fresh_env(**settings: str) -> dict[str, str]:
    """As on a fresh machine: no SHOAL_ settings, so shoal up starts its own Redis and S3."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SHOAL_")}
    env.update(settings)
    return env


@contextmanager
def shoal_up(tmp_path: Path, workers: int) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = fresh_env(
        **FAST, SHOAL_PORT=str(port), SHOAL_WORKERS=str(workers), SHOAL_DATA_DIR=str(tmp_path)
    )
    log = tmp_path / "up.log"  # a file, not a pipe: a pipe nobody drains blocks the children
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "shoal.cli", "up"], env=env, stdout=output, stderr=output
        )
    try:
        deadline = time.monotonic() + 90
        while READY_LINE not in log.read_text(errors="replace"):
            if process.poll() is not None:
                pytest.fail(f"shoal up exited with {process.returncode}:\n{log.read_text()}")
            assert time.monotonic() < deadline, "shoal up did not become ready"
            time.sleep(0.1)
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_shoal_up_runs_restarts_and_stops_cleanly(tmp_path: Path) -> None:
    with shoal_up(tmp_path, workers=2) as (process, url), httpx.Client(base_url=url) as http:
        job = http.post("/v1/jobs", json={"text": "Hello from shoal up."}).json()
        done = wait_for_job(http, job["id"])
        assert done["status"] == "succeeded"
        assert_speech(decode(httpx.get(done["audio"]["url"]).content), 22050, 0.8, 4.0)

        workers = {w["name"]: w["pid"] for w in http.get("/v1/queue").json()["workers"]}
        assert sorted(w.split("@")[0] for w in workers) == ["tts-1", "tts-2", "webhooks-1"]
        victim = sorted(workers)[0]
        os.kill(workers[victim], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:
            now = {w["name"]: w["pid"] for w in http.get("/v1/queue").json()["workers"]}
            if now.get(victim) not in (None, workers[victim]):
                break
            assert time.monotonic() < deadline, "the killed worker was not restarted"
            time.sleep(0.2)
        # The restarted worker does real work too.
        assert (
            wait_for_job(http, http.post("/v1/jobs", json={"text": "Again."}).json()["id"])[
                "status"
            ]
            == "succeeded"
        )

        children = descendants(process.pid)
        assert len(children) >= 6  # redis, weed, gateway, two workers, a webhook worker
        weed_ports = _weed_ports(children)
        assert weed_sockets_in_tmp(weed_ports)  # weed made its sockets in /tmp...
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    assert wait_gone(children, timeout=5) == set()
    assert weed_sockets_in_tmp(weed_ports) == []  # ...and shoal up deleted them


def _weed_ports(pids: set[int]) -> list[int]:
    """The ports SeaweedFS listens on, read from its command line."""
    for pid in pids:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        if "mini" in argv:
            return [
                int(arg.split("=")[1]) for arg in argv if re.match(r"-[\w.]+\.port(\.grpc)?=", arg)
            ]
    raise AssertionError("no SeaweedFS process under shoal up")


def test_a_killed_shoal_up_takes_its_children_with_it(tmp_path: Path) -> None:
    with shoal_up(tmp_path, workers=1) as (process, _):
        children = descendants(process.pid)
        process.kill()  # no chance to clean up: the kernel tells the children
        process.wait()
    assert wait_gone(children, timeout=30) == set()


def test_a_busy_port_is_refused_clearly(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "shoal.cli", "up"],
            env=fresh_env(SHOAL_PORT=str(port), SHOAL_DATA_DIR=str(tmp_path)),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert f"port {port} is in use" in result.stderr


def test_a_worker_that_cannot_start_stops_shoal_up_with_the_reason(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "shoal.cli", "up"],
        env=fresh_env(
            SHOAL_PORT=str(free_port()), SHOAL_DATA_DIR=str(tmp_path), SHOAL_ENGINE="fish-speech"
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "shoal worker cannot start" in result.stderr
    assert "a process cannot start" in result.stderr
