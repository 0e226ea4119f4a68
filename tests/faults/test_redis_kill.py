"""kill -9 Redis (AOF) under load, then bring it back.

No accepted job is lost; while Redis is down every submit is answered 503 at
once (never a 500, never a hang); the gateway, the workers and the result
watcher reconnect by themselves, and the jobs go on to succeed.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.faults.harness import Load, fault_stack, scaled, tally


def test_redis_killed_under_load_loses_no_accepted_job(tmp_path: Path) -> None:
    cycles = int(scaled(1, 4))
    with fault_stack(tmp_path, workers=2) as stack:
        with Load(stack.url, per_second=3, timeout=15) as load:
            time.sleep(3)
            for _ in range(cycles):
                load.phase = "redis-down"
                stack.kill_redis()
                # Longer than a worker retries recording (2 leases): its job's
                # message cannot be acknowledged, and it must consume again after.
                time.sleep(scaled(5, 8))
                stack.start_redis()
                load.phase = "steady"
                time.sleep(scaled(4, 8))
        stack.drain(load.accepted, timeout=scaled(90, 240))
        result = tally(stack, load.accepted)
    down = load.statuses("redis-down")
    print(result.line(), f"redis_kills={cycles}", f"while_down={dict(down)}")
    assert down, "no submit was made while Redis was down"
    assert set(down) <= {(503, "redis_unavailable"), (202, None)}, down  # 202: just before
    assert (503, "redis_unavailable") in down
    assert (None, None) not in load.statuses()  # no hang, no dropped connection
    assert result.lost == 0, result.lost_ids
    assert result.duplicated == 0, result.duplicated_ids
    assert result.failed == 0, result.failures
    after = [a for a in load.answers if a.phase == "steady"][-3:]
    assert all(a.status == 202 for a in after), after  # the gateway reconnected
