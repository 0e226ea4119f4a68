"""`make loadtest`: a spike against a fresh local stack with the autoscaler on.

    python -m loadtest.spike [--out results/spike-...] [--peak 12] [--seconds 100]

A private Redis and SeaweedFS, `shoal up --autoscale` (the local profile of the
worker ScaledObject, emulated GPU time), `shoal watch` into a CSV, and Locust's
`spike` shape; then it waits for the pool to drain, draws the picture
(`shoal report`) and prints one line counted from the job store, the bucket
and Locust. Everything listens on 127.0.0.1, everything it started is stopped,
and each phase has a deadline. Exit status 0 only when every job succeeded
once and the pool grew past one worker.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path

import redis
from rich.console import Console

from loadtest import tally
from loadtest.moments import moments
from loadtest.report import plot
from loadtest.watch import read_csv
from shoal import keys
from shoal.local.ports import free_port
from shoal.local.processes import ProcessSpec, spawn, stop
from shoal.local.redis_server import RedisServer
from shoal.local.s3_server import SeaweedS3
from shoal.registry import AutoscalerStatus
from shoal.settings import Settings
from shoal.storage import Storage

ROOT = Path(__file__).resolve().parent.parent
console = Console(stderr=True)


def _options() -> argparse.Namespace:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / f"spike-{stamp}")
    parser.add_argument("--base", type=int, default=1, help="users before and after the spike")
    parser.add_argument("--peak", type=int, default=12, help="users in the spike")
    parser.add_argument("--seconds", type=float, default=100, help="length of the Locust run")
    parser.add_argument("--rtf", type=float, default=0.25, help="emulated GPU real-time factor")
    parser.add_argument("--ready-timeout", type=float, default=300)
    parser.add_argument("--drain-timeout", type=float, default=300)
    return parser.parse_args()


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} after {timeout:g} s")
        time.sleep(1)


@contextmanager
def _running(spec: ProcessSpec, timeout: float = 60) -> Iterator[subprocess.Popen[bytes]]:
    process = spawn(spec)
    try:
        yield process
    finally:
        stop(process, timeout)


def _storage_and_env(out: Path, stack: ExitStack) -> tuple[dict[str, str], redis.Redis, Storage]:
    """A private Redis and S3 server, and the settings that point shoal at them."""
    server = RedisServer(out / "redis", free_port(), durable=False)
    stack.enter_context(_running(server.spec()))
    server.wait_ready()
    s3 = SeaweedS3(out / "s3")
    stack.enter_context(_running(s3.spec()))
    stack.callback(s3.cleanup)
    s3.wait_ready()
    env = {"SHOAL_REDIS_URL": server.url, "SHOAL_S3_BUCKET": "shoal-loadtest", **s3.env()}
    storage = Storage(Settings.model_validate({k[6:].lower(): v for k, v in env.items()}))
    client = redis.Redis.from_url(server.url, decode_responses=True)
    stack.callback(client.close)
    return env, client, storage


def _autoscaler(client: redis.Redis) -> AutoscalerStatus | None:
    raw = client.get(keys.AUTOSCALER)
    return AutoscalerStatus.model_validate_json(raw) if raw else None


def _drained(client: redis.Redis, jobs: Path) -> bool:
    ids = tally.accepted_ids(jobs) if jobs.exists() else set()
    statuses = [client.hget(keys.job(job), "status") for job in ids]
    pool = _autoscaler(client)
    at_min = pool is not None and pool.desired == pool.current == pool.ready == pool.min_replicas
    return at_min and all(status in tally.ENDED for status in statuses)


def _command(name: str, argv: list[str], env: dict[str, str], log: Path) -> ProcessSpec:
    return ProcessSpec(name=name, argv=[sys.executable, "-m", *argv], env=env, log_file=log)


def _locust_argv(o: argparse.Namespace, url: str, key: str, out: Path) -> list[str]:
    return [
        "locust", "-f", str(ROOT / "loadtest" / "locustfile.py"), "--headless",
        "--host", url, "--api-key", key, "--shape", "spike",
        "--shape-base", str(o.base), "--shape-peak", str(o.peak),
        "--shape-seconds", str(o.seconds), "--csv", str(out / "locust"),
        "--csv-full-history", "--html", str(out / "locust.html"),
        "--jobs-log", str(out / "jobs.txt"), "--only-summary",
    ]  # fmt: skip


def _spike(o: argparse.Namespace, out: Path, stack: ExitStack) -> tuple[tally.Tally, int]:
    """Run the stack, the watch and Locust, wait for the drain; the tally and Locust's code."""
    port, key = free_port(), "lt_" + secrets.token_urlsafe(12)
    url = f"http://127.0.0.1:{port}"
    env, client, storage = _storage_and_env(out, stack)
    shoal_env = {
        **os.environ,
        **env,
        "SHOAL_PORT": str(port),
        "SHOAL_HOST": "127.0.0.1",
        "SHOAL_DATA_DIR": str(out / "stack"),
        "SHOAL_EMULATE_RTF": str(o.rtf),
        "SHOAL_API_KEYS": key,
        "SHOAL_AUTOSCALE": "true",
    }
    up = _command("shoal up", ["shoal.cli", "up"], shoal_env, out / "shoal-up.log")
    stack.enter_context(_running(up, timeout=120))
    with console.status("starting the stack (Redis, S3, gateway, workers, autoscaler)"):
        _wait(lambda: _autoscaler(client) is not None, o.ready_timeout, "the stack was not ready")
    watch_argv = ["shoal.cli", "watch", "--url", url, "--no-live", "--interval", "1",
                  "--window", "15", "--csv", str(out / "watch.csv")]  # fmt: skip
    watch_env = {**os.environ, "SHOAL_WATCH_API_KEY": key}
    stack.enter_context(_running(_command("watch", watch_argv, watch_env, out / "watch.log")))
    with console.status(f"Locust: a spike of {o.peak} users ({o.seconds:g} s)"):
        argv = _locust_argv(o, url, key, out)
        locust = spawn(_command("locust", argv, dict(os.environ), out / "locust.log"))
        try:
            locust_code = locust.wait(o.seconds + 120)
        finally:
            stop(locust, 10)
    with console.status("waiting for every job to end and the pool to drain"):
        _wait(lambda: _drained(client, out / "jobs.txt"), o.drain_timeout, "not drained")
        time.sleep(3)  # a few samples of the pool at rest
    result = tally.count(
        tally.accepted_ids(out / "jobs.txt"),
        tally.stored_jobs(client),
        tally.audio_objects(storage),
        moments(read_csv(out / "watch.csv")),
    )
    return result, locust_code


def main() -> int:
    o = _options()
    out: Path = o.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]shoal spike[/]: results in {out}")
    with ExitStack() as stack:
        result, locust_code = _spike(o, out, stack)
    picture = plot(
        out / "watch.csv",
        out / "locust_stats_history.csv",
        out / "spike.png",
        "A spike absorbed and drained: shoal's worker pool under Locust",
        result.line(),
    )
    console.print(f"Locust's report: {out / 'locust.html'}  picture: {picture}")
    if locust_code != 0:
        console.print(
            f"[yellow]Locust counted failures (exit {locust_code}): {out}/locust_failures.csv"
        )
    print(result.line(), flush=True)
    return 0 if result.clean and locust_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
