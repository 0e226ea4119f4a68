"""The line `make loadtest` ends with, counted from the job store, the bucket and Locust.

    submitted=N succeeded=N failed=N lost=N duplicated=N max_replicas=R scale_out_s=S drain_s=D

- submitted: jobs accepted, the ids Locust logged plus any other job in the
  store (the stack is fresh, so every job in it came from the test);
- succeeded / failed: their state in the job store;
- lost: accepted but not ended (no record, or still queued or running);
- duplicated: jobs with more than one audio object (`audio/<job>/<attempt>.<ext>`)
  in the bucket: synthesized to a visible result more than once;
- max_replicas, scale_out_s, drain_s: from the watch CSV (`loadtest.moments`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import redis

from loadtest.moments import Moments
from shoal import keys
from shoal.jobs import JobRecord
from shoal.storage import AUDIO_PREFIX, Storage

ENDED = {"succeeded", "failed", "canceled"}


@dataclass(frozen=True)
class Tally:
    submitted: int
    succeeded: int
    failed: int
    lost: int
    duplicated: int
    max_replicas: int
    scale_out_s: float | None
    drain_s: float | None

    def line(self) -> str:
        def seconds(value: float | None) -> str:
            return "na" if value is None else f"{value:.0f}"

        return (
            f"submitted={self.submitted} succeeded={self.succeeded} failed={self.failed} "
            f"lost={self.lost} duplicated={self.duplicated} max_replicas={self.max_replicas} "
            f"scale_out_s={seconds(self.scale_out_s)} drain_s={seconds(self.drain_s)}"
        )

    @property
    def clean(self) -> bool:
        """Every job done once, and the pool grew past one worker."""
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.failed == 0
            and self.succeeded == self.submitted > 0
            and self.max_replicas > 1
        )


def accepted_ids(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def stored_jobs(client: redis.Redis) -> dict[str, JobRecord]:
    prefix = keys.job("")
    records = {}
    for key in client.scan_iter(match=keys.job("*"), count=1000):
        name = key.decode() if isinstance(key, bytes) else key
        fields = client.hgetall(name)
        if fields:
            decoded = {
                (k.decode() if isinstance(k, bytes) else k): (
                    v.decode() if isinstance(v, bytes) else v
                )
                for k, v in fields.items()
            }
            records[name[len(prefix) :]] = JobRecord.from_hash(decoded)
    return records


def audio_objects(storage: Storage) -> Counter[str]:
    """Audio objects per job id."""
    return Counter(key.split("/")[1] for key in storage.keys(AUDIO_PREFIX) if key.count("/") >= 2)


def count(
    locust_ids: set[str], records: dict[str, JobRecord], audio: Counter[str], moments: Moments
) -> Tally:
    submitted = locust_ids | set(records)
    states = Counter(
        records[job].status.value if job in records else "missing" for job in submitted
    )
    return Tally(
        submitted=len(submitted),
        succeeded=states["succeeded"],
        failed=states["failed"],
        lost=sum(n for state, n in states.items() if state not in ENDED),
        duplicated=sum(1 for job in submitted if audio[job] > 1),
        max_replicas=moments.max_replicas,
        scale_out_s=moments.scale_out_s,
        drain_s=moments.drain_s,
    )
