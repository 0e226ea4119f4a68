"""SIGSTOP a worker mid-job for longer than its lease, then SIGCONT it.

The paused worker's lease lapses and its job is requeued to the other worker;
when the paused one wakes it must notice the job is no longer its own and
record nothing. One visible result, no spurious failure.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.conftest import FAST
from tests.faults.harness import fault_stack, scaled, tally

LEASE = float(FAST["SHOAL_LEASE_SECONDS"])


def test_a_worker_paused_past_its_lease_gives_one_result(tmp_path: Path) -> None:
    rounds = int(scaled(2, 6))
    submitted = []
    # Emulated GPU time of 3x real time: a job runs about 5 s, several leases long.
    with fault_stack(tmp_path, workers=2, SHOAL_EMULATE_RTF="3") as stack:
        for _ in range(rounds):
            job_id = stack.submit()
            submitted.append(job_id)
            worker = stack.wait_running(job_id)
            stack.signal_worker(worker, signal.SIGSTOP)
            time.sleep(3 * LEASE)  # paused well past its lease
            stack.signal_worker(worker, signal.SIGCONT)
        stack.drain(submitted, timeout=scaled(60, 120))
        result = tally(stack, submitted)
    print(result.line(), f"pauses={rounds}")
    assert result.lost == 0, result.lost_ids
    assert result.duplicated == 0, result.duplicated_ids
    assert result.failed == 0, result.failures  # no spurious worker_lost or timeout
    assert result.succeeded == result.submitted == rounds
