"""Stop SeaweedFS for a while under load, then start it again.

Jobs that hit the outage wait for the storage (the upload is retried with
backoff inside the attempt, keeping the audio) and finish once it is back; an
outage longer than the documented bound ends them `failed` with
`storage_unavailable`. None is left queued or running.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.faults.harness import Load, fault_stack, scaled, tally

# Shorter than docs/reliability.md's bound for riding out a storage outage.
OUTAGE_SECONDS = scaled(8, 30)


def test_a_storage_outage_is_ridden_out(tmp_path: Path) -> None:
    with fault_stack(tmp_path, workers=2) as stack:
        with Load(stack.url, per_second=2) as load:
            time.sleep(3)
            load.phase = "storage-down"
            stack.stop_s3()
            time.sleep(OUTAGE_SECONDS)
            stack.start_s3()
            load.phase = "steady"
            time.sleep(4)
        stack.drain(load.accepted, timeout=scaled(120, 300))
        result = tally(stack, load.accepted)
    print(result.line(), f"outage_seconds={OUTAGE_SECONDS:g}")
    assert set(load.statuses()) == {(202, None)}  # submits never needed the storage
    assert result.lost == 0, result.lost_ids  # none stuck
    assert set(result.failures) <= {"storage_unavailable"}, result.failures
    assert result.duplicated == 0, result.duplicated_ids
    assert result.succeeded == result.submitted, result.failures  # within the bound
