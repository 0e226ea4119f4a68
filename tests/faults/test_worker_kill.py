"""SIGKILL synthesis workers again and again under a steady load: every job succeeds once.

A killed worker's jobs lose their lease and are requeued; a replacement
starts, as a supervisor or Kubernetes would start one. Nothing may be lost,
fail, or be synthesized into a second visible result.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import cast

from shoal import keys
from tests.faults.harness import Load, fault_stack, scaled, tally


def test_sigkilled_workers_lose_nothing_and_duplicate_nothing(tmp_path: Path) -> None:
    seconds = scaled(12, 90)
    kills = 0
    with fault_stack(tmp_path, workers=3, SHOAL_MAX_ATTEMPTS="20") as stack:
        with Load(stack.url, per_second=2) as load:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                time.sleep(2.0)
                busy = set(cast(list[str], stack.redis.hvals(keys.inflight(keys.TTS_QUEUE))))
                candidates = sorted(busy & set(stack.workers)) or sorted(stack.workers)
                stack.kill_worker(random.choice(candidates))  # mid-job when one is busy
                kills += 1
                stack.start_worker(f"tts-replacement-{kills}@faults")
        stack.drain(load.accepted, timeout=scaled(90, 240))
        result = tally(stack, load.accepted)
    print(result.line(), f"kills={kills}")
    assert set(load.statuses()) == {(202, None)}, load.statuses()
    assert result.submitted > 0 and kills > 0
    assert result.lost == 0, result.lost_ids
    assert result.duplicated == 0, result.duplicated_ids
    assert result.failed == 0, result.failures
    assert result.succeeded == result.submitted
