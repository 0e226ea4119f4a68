"""A stack whose metrics and logs the tests read: a gateway, a synthesis worker
and a webhook worker, each logging JSON lines to its own file and serving
Prometheus metrics, after a known workload.

The workload runs before any worker starts, so what each process saw is
known exactly: one job canceled while queued, one that fails on the worker
(a language no engine catalog had refused yet), and one with a request id and
a webhook that succeeds and is delivered.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from shoal import keys
from shoal.local.ports import free_ports
from tests.receiver import Receiver, receiver
from tests.support import Env, gateway, running, start_worker_spec, wait_for_job, wait_for_worker

SECRET = "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
REQUEST_ID = "req-observed-0001"
PROCESSES = ("gateway", "worker", "webhooks")


@dataclass(frozen=True)
class Family:
    name: str
    type: str
    samples: list[Sample]

    def value(self, sample: str | None = None, **labels: str) -> float:
        """The one sample named `sample` (the family's name by default) with these labels."""
        wanted = sample or self.name
        found = [s.value for s in self.samples if s.name == wanted and s.labels == labels]
        assert len(found) == 1, f"{wanted}{labels}: {found} in {self.samples}"
        return float(found[0])


def parse(text: str) -> dict[str, Family]:
    families = {}
    for family in text_string_to_metric_families(text):
        if family.name.endswith("_created"):
            continue  # when a counter or histogram began: a companion of its family
        # The text parser drops a counter's _total from the family name; put it back.
        name = family.name + "_total" if family.type == "counter" else family.name
        families[name] = Family(name, family.type, list(family.samples))
    return families


@dataclass
class Observed:
    url: str
    http: httpx.Client
    redis: redis.Redis
    hooks: Receiver
    logs: dict[str, Path]
    metrics_urls: dict[str, str]
    canceled_job: str
    failed_job: str
    job: dict[str, Any]  # the succeeded one, as GET returned it

    def scrape(self, process: str) -> dict[str, Family]:
        response = httpx.get(self.metrics_urls[process], timeout=10)
        assert response.status_code == 200
        return parse(response.text)

    def log_lines(self, process: str) -> list[dict[str, Any]]:
        """Every line the process logged, each parsed as JSON (a line that is not fails)."""
        text = self.logs[process].read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def _wait_delivered(client: httpx.Client, job_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (client.get(f"/v1/jobs/{job_id}").json().get("webhook") or {}).get(
        "state"
    ) != "delivered":
        assert time.monotonic() < deadline, "the webhook was never delivered"
        time.sleep(0.05)


def _workload_before_workers(http: httpx.Client, hooks: Receiver) -> tuple[str, str, str]:
    canceled = http.post("/v1/jobs", json={"text": "Never spoken."}).json()["id"]
    assert http.post(f"/v1/jobs/{canceled}/cancel").json()["status"] == "canceled"
    # No worker has published its catalog yet, so the gateway lets this through.
    failed = http.post("/v1/jobs", json={"text": "Hallo.", "language": "xx"}).json()["id"]
    body = {"text": "Hello, observed.", "webhook": {"url": hooks.url + "/ok"}}
    sent = http.post("/v1/jobs", json=body, headers={"X-Request-ID": REQUEST_ID})
    assert sent.status_code == 202 and sent.headers["x-request-id"] == REQUEST_ID
    return canceled, failed, sent.json()["id"]


@contextmanager
def observed_stack(env: Env, folder: Path) -> Iterator[Observed]:
    worker_port, webhook_port = free_ports(2)
    env = env.with_(
        SHOAL_LOG_FORMAT="json",
        SHOAL_WEBHOOK_SECRET=SECRET,
        SHOAL_WEBHOOK_ALLOW_HOSTS="127.0.0.1",
    )
    logs = {name: folder / f"{name}.log" for name in PROCESSES}
    client = redis.Redis.from_url(env.values["SHOAL_REDIS_URL"], decode_responses=True)
    with ExitStack() as stack:
        hooks = stack.enter_context(receiver())
        url = stack.enter_context(gateway(env, log_file=logs["gateway"]))
        http = stack.enter_context(httpx.Client(base_url=url, timeout=30))
        canceled, failed, succeeded = _workload_before_workers(http, hooks)
        for name, queue, port in (
            ("worker", keys.TTS_QUEUE, worker_port),
            ("webhooks", keys.WEBHOOK_QUEUE, webhook_port),
        ):
            spec = start_worker_spec(
                env.with_(SHOAL_WORKER_METRICS_PORT=str(port)), f"{name}-observed@tests", queue
            )
            spec.log_file = logs[name]
            stack.enter_context(running(spec))
            wait_for_worker(client, f"{name}-observed@tests")
        assert wait_for_job(http, failed)["status"] == "failed"
        job = wait_for_job(http, succeeded)
        assert job["status"] == "succeeded", job
        _wait_delivered(http, succeeded)
        yield Observed(
            url=url,
            http=http,
            redis=client,
            hooks=hooks,
            logs=logs,
            metrics_urls={
                "gateway": f"{url}/metrics",
                "worker": f"http://127.0.0.1:{worker_port}/metrics",
                "webhooks": f"http://127.0.0.1:{webhook_port}/metrics",
            },
            canceled_job=canceled,
            failed_job=failed,
            job=job,
        )
    client.close()
