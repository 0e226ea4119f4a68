"""The fault-injection harness: a whole shoal on real processes, load, and an honest count.

`FaultStack` runs a private redis-server (AOF, as `shoal up` runs it), a
private SeaweedFS, a gateway and synthesis workers, all on loopback ports, and
can kill, stop or restart any of them. `Load` submits jobs at a steady rate
from a thread, the way a client would (retrying nothing, counting every
answer). `ResultWatcher` counts the terminal results Redis announces per job.
`tally` counts what happened from the job store and the bucket, never from
what the clients were told:

    submitted   jobs the gateway accepted (2xx with an id)
    succeeded   of those, jobs whose record says succeeded
    failed      of those, jobs whose record says failed (codes in `failures`)
    lost        of those, jobs with no record, or still queued/running at the end
    duplicated  jobs with more than one audio object (audio/<job>/<attempt>.<ext>)
                or more than one announced result

Every test prints `tally.line()`. SHOAL_FAULTS=full (`make faults`) runs the
long versions; the default is the short one `make test` runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import redis

from shoal import keys
from shoal.local.ports import free_port
from shoal.local.processes import spawn, stop
from shoal.local.redis_server import RedisServer
from shoal.local.s3_server import SeaweedS3
from shoal.storage import AUDIO_PREFIX, Storage
from tests.conftest import FAST
from tests.support import Env, gateway_on, start_worker_spec, storage_settings, wait_for_worker

FULL = os.environ.get("SHOAL_FAULTS", "short") == "full"
TERMINAL = {"succeeded", "failed", "canceled"}
# Jobs of about a second of audio, taking about that long on a worker (emulated GPU time).
TEXT = "A steady stream of jobs keeps the workers busy."


def scaled(short: float, full: float) -> float:
    return full if FULL else short


@dataclass
class Tally:
    submitted: int
    succeeded: int
    failed: int
    lost: int
    duplicated: int
    failures: Counter[str] = field(default_factory=Counter)
    lost_ids: list[str] = field(default_factory=list)
    duplicated_ids: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"submitted={self.submitted} succeeded={self.succeeded} failed={self.failed} "
            f"lost={self.lost} duplicated={self.duplicated}"
            + (f" failures={dict(self.failures)}" if self.failures else "")
        )


class FaultStack:
    """Redis, SeaweedFS, one gateway and workers, each of which a test may break."""

    def __init__(self, folder: Path, **settings: str) -> None:
        self.folder = folder
        self.redis_server = RedisServer(folder / "redis", free_port(), durable=True)
        self.s3 = SeaweedS3(folder / "s3")
        self.gateway_port = free_port()
        self.logs = folder / "logs"  # every process's output, read when a test fails
        self.env = Env(
            {
                **FAST,
                **self.s3.env(),
                "SHOAL_REDIS_URL": self.redis_server.url,
                "SHOAL_S3_BUCKET": "shoal-faults",
                "SHOAL_EMULATE_RTF": "0.5",
                "SHOAL_LOG_LEVEL": "WARNING",
                "SHOAL_REDIS_TIMEOUT_SECONDS": "2",
                **settings,
            }
        )
        self.redis_process: subprocess.Popen[bytes] | None = None
        self.s3_process: subprocess.Popen[bytes] | None = None
        self.gateway_process: subprocess.Popen[bytes] | None = None
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.watcher: ResultWatcher  # set by fault_stack
        self.redis = redis.Redis.from_url(
            self.redis_server.url, decode_responses=True, socket_timeout=5
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    # --- each part, started and broken -------------------------------------------

    def start_redis(self) -> None:
        self.redis_process = spawn(self.redis_server.spec())
        self.redis_server.wait_ready()

    def kill_redis(self) -> None:
        assert self.redis_process is not None
        self.redis_process.kill()  # kill -9: no chance to flush anything
        self.redis_process.wait()

    def start_s3(self) -> None:
        self.s3_process = spawn(self.s3.spec())
        self.s3.wait_ready()

    def stop_s3(self) -> None:
        assert self.s3_process is not None
        stop(self.s3_process, timeout=10)
        self.s3.cleanup()

    def start_gateway(self) -> None:
        self.gateway_process = gateway_on(
            self.gateway_port, self.env, log_file=self.logs / "gateway.log"
        )

    def kill_gateway(self) -> None:
        assert self.gateway_process is not None
        self.gateway_process.kill()
        self.gateway_process.wait()

    def start_worker(self, name: str) -> None:
        spec = replace(start_worker_spec(self.env, name), log_file=self.logs / f"{name}.log")
        self.workers[name] = spawn(spec)
        wait_for_worker(self.redis, name, timeout=60)

    def kill_worker(self, name: str) -> None:
        process = self.workers.pop(name)
        process.kill()
        process.wait()

    def signal_worker(self, name: str, signum: int) -> None:
        os.kill(self.workers[name].pid, signum)

    def stop_all(self) -> None:
        for process in self.workers.values():
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
            stop(process, timeout=15)
        for server in (self.gateway_process, self.s3_process, self.redis_process):
            if server is not None:
                stop(server, timeout=15)
        self.s3.cleanup()
        self.redis.close()

    # --- what happened ---------------------------------------------------------------

    def submit(self) -> str:
        response = httpx.post(f"{self.url}/v1/jobs", json={"text": TEXT}, timeout=15)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def wait_running(self, job_id: str, timeout: float = 30) -> str:
        """The worker once it runs the job."""
        deadline = time.monotonic() + timeout
        while (record := self.record(job_id)).get("status") != "running":
            assert time.monotonic() < deadline, f"job never ran: {record}"
            time.sleep(0.02)
        return record["worker"]

    def record(self, job_id: str) -> dict[str, str]:
        return self.redis.hgetall(keys.job(job_id))  # type: ignore[return-value]

    def drain(self, job_ids: list[str], timeout: float) -> None:
        """Wait (bounded) until every job is terminal or gone."""
        deadline = time.monotonic() + timeout
        pending = list(job_ids)
        while pending and time.monotonic() < deadline:
            pending = [j for j in pending if self.record(j).get("status") not in TERMINAL | {None}]
            pending = [j for j in pending if self.record(j)]
            time.sleep(0.2)

    def audio_objects(self) -> Counter[str]:
        """Audio objects per job in the bucket."""
        storage = Storage(storage_settings(self.env))
        return Counter(key.split("/")[1] for key in storage.keys(AUDIO_PREFIX))


@contextmanager
def fault_stack(folder: Path, workers: int, **settings: str) -> Iterator[FaultStack]:
    """The stack, started, with a ResultWatcher on its Redis (`stack.watcher`)."""
    stack = FaultStack(folder, **settings)
    try:
        stack.start_redis()
        stack.start_s3()
        stack.start_gateway()
        for index in range(workers):
            stack.start_worker(f"tts-{index}@faults")
        with ResultWatcher(stack.redis_server.url) as stack.watcher:
            yield stack
    finally:
        stack.stop_all()


class ResultWatcher:
    """Counts terminal results announced per job (keys.done_channel), across reconnects."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.results: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        prefix = keys.done_channel("")
        while not self._stop.is_set():
            client = redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5)
            try:
                with client.pubsub() as pubsub:
                    pubsub.psubscribe(keys.done_channel("*"))
                    while not self._stop.is_set():
                        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                        if message and message["type"] == "pmessage":
                            self.results[str(message["channel"]).removeprefix(prefix)] += 1
            except (redis.RedisError, OSError):
                time.sleep(0.2)  # Redis away: reconnect
            finally:
                client.close()

    def __enter__(self) -> ResultWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@dataclass
class Answer:
    status: int | None  # None: no HTTP answer (connection refused, timeout)
    code: str | None
    phase: str  # what the test was doing to the stack then


class Load:
    """Submits jobs at a steady rate from a thread until stopped; keeps every answer."""

    def __init__(self, url: str, per_second: float, timeout: float = 15.0) -> None:
        self.url = url
        self.interval = 1 / per_second
        self.timeout = timeout
        self.accepted: list[str] = []
        self.answers: list[Answer] = []
        self.phase = "steady"  # set by the test around each fault
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=self.timeout) as http:
            next_at = time.monotonic()
            while not self._stop.is_set():
                self._submit(http)
                next_at += self.interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _submit(self, http: httpx.Client) -> None:
        phase = self.phase
        try:
            response = http.post("/v1/jobs", json={"text": TEXT})
        except httpx.HTTPError:
            self.answers.append(Answer(None, None, phase))
            return
        body: dict[str, Any] = response.json() if response.content else {}
        self.answers.append(Answer(response.status_code, body.get("code"), phase))
        if response.is_success:
            self.accepted.append(str(body["id"]))

    def statuses(self, phase: str | None = None) -> Counter[tuple[int | None, str | None]]:
        """(status, code) of the answers, of one phase or all."""
        return Counter(
            (answer.status, answer.code)
            for answer in self.answers
            if phase is None or answer.phase == phase
        )

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout + 5)


def tally(stack: FaultStack, job_ids: list[str]) -> Tally:
    counts: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    lost_ids = []
    for job_id in job_ids:
        record = stack.record(job_id)
        status = record.get("status")
        if status not in TERMINAL:
            lost_ids.append(job_id)
            continue
        counts[status] += 1
        if status == "failed":
            failures[_error_code(record)] += 1
    objects = stack.audio_objects()
    duplicated = [
        job_id for job_id in job_ids if objects[job_id] > 1 or stack.watcher.results[job_id] > 1
    ]
    return Tally(
        submitted=len(job_ids),
        succeeded=counts["succeeded"],
        failed=counts["failed"],
        lost=len(lost_ids),
        duplicated=len(duplicated),
        failures=failures,
        lost_ids=lost_ids,
        duplicated_ids=duplicated,
    )


def _error_code(record: dict[str, str]) -> str:
    return str(json.loads(record.get("error") or "{}").get("code", "?"))
