"""Jobs as they end, in one capped Redis stream: completions per second and time to audio.

The job store appends a job in the same script that moves it to a terminal
state (so every ending counts once: those a worker records, and the cancels and
the failures maintenance records); `/v1/queue` and `shoal watch` read the last
few seconds of it. The stream keeps about the most recent MAX_ENTRIES.
"""

from __future__ import annotations

import math
import time

import redis.asyncio as aredis
from pydantic import BaseModel, Field

from shoal import keys

MAX_ENTRIES = 10_000


class RecentJobs(BaseModel):
    window_seconds: float = Field(description="How far back these figures look.")
    succeeded: int
    failed: int
    canceled: int
    completions_per_second: float = Field(description="Jobs that ended, per second.")
    time_to_audio_p50_seconds: float | None = Field(
        None, description="Median from accepted to audio stored, of the jobs that succeeded."
    )
    time_to_audio_p95_seconds: float | None = None


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile (what Prometheus' histograms approximate)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


async def recent(client: aredis.Redis, window_seconds: float) -> RecentJobs:
    since = int((time.time() - window_seconds) * 1000)
    entries = await client.xrange(keys.COMPLETIONS, min=f"{since}-0", max="+") or []
    counts = {"succeeded": 0, "failed": 0, "canceled": 0}
    waits: list[float] = []
    for _, raw in entries:
        fields = {_text(k): _text(v) for k, v in (raw or {}).items()}
        status = fields.get("status", "")
        counts[status] = counts.get(status, 0) + 1
        if status == "succeeded" and fields.get("created") and fields.get("finished"):
            waits.append(float(fields["finished"]) - float(fields["created"]))
    p50, p95 = percentile(waits, 0.5), percentile(waits, 0.95)
    return RecentJobs(
        window_seconds=window_seconds,
        succeeded=counts["succeeded"],
        failed=counts["failed"],
        canceled=counts["canceled"],
        completions_per_second=round(len(entries) / window_seconds, 3),
        time_to_audio_p50_seconds=None if p50 is None else round(p50, 3),
        time_to_audio_p95_seconds=None if p95 is None else round(p95, 3),
    )


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
