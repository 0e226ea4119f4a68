"""Jobs as they end, in one capped Redis stream: completions per second and time to audio.

A worker appends a job once it ends (an atomic script reads the job's
status and timestamps from its record and writes the entry only once per job,
so a message delivered twice counts once); `/v1/queue` and `shoal watch` read
the last few seconds of it. The stream keeps the most recent MAX_ENTRIES
(trimmed approximately, as Redis does cheaply).
"""

from __future__ import annotations

import math
import time

import redis
import redis.asyncio as aredis
from pydantic import BaseModel, Field

from shoal import keys
from shoal.logs import get_logger

log = get_logger(__name__)

MAX_ENTRIES = 10_000
MARK_SECONDS = 3600  # a job cannot end twice within this long
_RECORD = """
local fields = redis.call('HMGET', KEYS[1], 'status', 'created_at', 'started_at', 'finished_at')
local status = fields[1]
if status ~= 'succeeded' and status ~= 'failed' and status ~= 'canceled' then return 0 end
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then return 0 end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'job', ARGV[1], 'status', status,
           'created', fields[2] or '', 'started', fields[3] or '', 'finished', fields[4] or '')
return 1
"""


def record(client: redis.Redis, job_id: str) -> bool:
    """Append the job if it has ended and is not in the stream yet.

    Never raises: the job itself is recorded already, and a figure missing
    from a dashboard is no reason to fail it.
    """
    script = client.register_script(_RECORD)
    try:
        written = script(
            keys=[keys.job(job_id), keys.completion_mark(job_id), keys.COMPLETIONS],
            args=[job_id, MARK_SECONDS, MAX_ENTRIES],
        )
    except redis.RedisError as exc:
        log.warning("job end not added to the completions stream", job_id=job_id, error=str(exc))
        return False
    return bool(written)


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
