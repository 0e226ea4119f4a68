"""Clients retrying one Idempotency-Key each through a gateway crash get one job each.

The gateway is SIGKILLed while clients submit and is started again on the same
port; each client retries (connection refused, 503) with its own key until it
has an answer from the new gateway. Every answer a client got names the same
job, and Redis holds exactly one job per client.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from shoal import keys
from tests.faults.harness import TEXT, fault_stack, scaled, tally


def _client(url: str, key: str, ids: set[str], restarted: threading.Event) -> None:
    answered_after_restart = False
    with httpx.Client(base_url=url, timeout=10) as http:
        while not answered_after_restart:
            after = restarted.is_set()
            try:
                response = http.post(
                    "/v1/jobs", json={"text": TEXT}, headers={"Idempotency-Key": key}
                )
            except httpx.HTTPError:
                time.sleep(0.1)  # the gateway is down: retry, with the same key
                continue
            if response.is_success:
                ids.add(response.json()["id"])
                answered_after_restart = after
            time.sleep(0.1)


def test_one_idempotency_key_one_job_through_a_gateway_crash(tmp_path: Path) -> None:
    clients = int(scaled(4, 16))
    ids: dict[str, set[str]] = {f"retry-{index}": set() for index in range(clients)}
    with fault_stack(tmp_path, workers=1) as stack:
        restarted = threading.Event()
        threads = [
            threading.Thread(target=_client, args=(stack.url, key, got, restarted))
            for key, got in ids.items()
        ]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        stack.kill_gateway()  # mid-traffic
        time.sleep(1.0)
        stack.start_gateway()
        restarted.set()
        for thread in threads:
            thread.join(timeout=60)
        unique = sorted(job_id for got in ids.values() for job_id in got)
        stored = len(list(stack.redis.scan_iter(keys.job("*"))))
        stack.drain(unique, timeout=scaled(60, 120))
        result = tally(stack, unique)
    print(result.line(), f"clients={clients}", "gateway_kills=1")
    assert all(len(got) == 1 for got in ids.values()), ids
    assert stored == clients  # one job per key, whatever the retries
    assert result.lost == 0 and result.duplicated == 0 and result.failed == 0
    assert result.succeeded == clients
