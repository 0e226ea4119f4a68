"""Every Redis key and queue name shoal uses; no other module spells one out.

KEDA's ScaledObjects read `TTS_QUEUE` (a Celery list, LLEN) and
`inflight(TTS_QUEUE)` (a hash, HLEN): waiting plus running work.
"""

from __future__ import annotations

PREFIX = "shoal"

# Celery queues. With the Redis broker a queue is a list of the same name.
TTS_QUEUE = "tts"
WEBHOOK_QUEUE = "webhooks"
QUEUES = (TTS_QUEUE, WEBHOOK_QUEUE)

# Celery task names: the gateway enqueues by name, the worker registers them.
SYNTHESIZE_TASK = "shoal.synthesize"
DELIVER_WEBHOOK_TASK = "shoal.deliver_webhook"

# Sorted set of queued job ids by enqueue time (oldest waiting job).
QUEUED = f"{PREFIX}:queued"
# Synthesis messages of jobs requeued with a delay (storage away), scored by due time.
TTS_SCHEDULED = f"{PREFIX}:tts:scheduled"
# kombu's Redis transport keeps each message a worker holds (acks_late) in this hash,
# by delivery tag, and the time it took it in the index (its own defaults).
BROKER_UNACKED = "unacked"
BROKER_UNACKED_INDEX = "unacked_index"
# Sorted set of succeeded job ids by the time their audio expires.
AUDIO_EXPIRY = f"{PREFIX}:audio-expiry"
# Sorted set of worker names by the time they were last seen.
WORKERS = f"{PREFIX}:workers"
# Webhook retries waiting for their time: Celery messages scored by due time.
WEBHOOKS_SCHEDULED = f"{PREFIX}:webhooks:scheduled"
# Hash of webhook URL -> when a receiver answered 410 Gone for it.
WEBHOOKS_DISABLED = f"{PREFIX}:webhooks:disabled"
# Sorted set of cloned voice ids by creation time.
VOICES = f"{PREFIX}:voices"
# Hash of managed API key id -> its record (JSON: name, created_at, digest).
API_KEYS = f"{PREFIX}:apikeys"
# Set once the first managed key is made, never unset: from then on keys are required.
AUTH_REQUIRED = f"{PREFIX}:auth-required"


def job(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def lease(job_id: str) -> str:
    """Exists while the worker running the job is alive (a TTL it renews)."""
    return f"{PREFIX}:lease:{job_id}"


def done_channel(job_id: str) -> str:
    """Pub/sub channel told when the job reaches a terminal state."""
    return f"{PREFIX}:done:{job_id}"


def audio_stream(job_id: str) -> str:
    """Redis Stream of a streamed job's audio, piece by piece (bounded, expiring)."""
    return f"{PREFIX}:audio-stream:{job_id}"


def inflight(queue: str) -> str:
    """Hash of work running from `queue`: job id -> worker, or delivery -> worker."""
    return f"{PREFIX}:inflight:{queue}"


def delivery(job_id: str, event: str) -> str:
    """The delivery record of one webhook event of a job."""
    return f"{PREFIX}:delivery:{job_id}:{event}"


def queued_by(owner: str) -> str:
    """Sorted set of an owner's queued job ids (its cap); the scripts append the owner."""
    return f"{PREFIX}:queued-by:{owner}"


def idempotency(scope: str, key_digest: str) -> str:
    return f"{PREFIX}:idem:{scope}:{key_digest}"


def catalog(engine: str) -> str:
    """The voices and languages an engine's workers published at start."""
    return f"{PREFIX}:catalog:{engine}"


def worker_info(name: str) -> str:
    return f"{PREFIX}:worker:{name}"


def voice(voice_id: str) -> str:
    """A cloned voice's record (JSON); its audio lives in storage under voices/<id>/."""
    return f"{PREFIX}:voice:{voice_id}"


# The local autoscaler's (`shoal up --autoscale`) state: JSON, refreshed each sync.
AUTOSCALER = f"{PREFIX}:autoscaler:{TTS_QUEUE}"
# Stream of jobs as they end (job, status, timestamps): completions per second
# and time-to-audio percentiles for /v1/queue and `shoal watch`. Capped.
COMPLETIONS = f"{PREFIX}:completions"


def api_key(digest: str) -> str:
    """A managed API key's id, found by the SHA-256 of the key (the key is never stored)."""
    return f"{PREFIX}:apikey:{digest}"


def rate_limit(caller: str) -> str:
    """A caller's submit token bucket."""
    return f"{PREFIX}:ratelimit:{caller}"
