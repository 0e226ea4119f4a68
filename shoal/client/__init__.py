"""Python clients of the shoal API, sync and async.

    from shoal.client import Client

    with Client("http://127.0.0.1:8000", api_key=None) as shoal:
        job, audio = shoal.say("Hello from shoal.", format="mp3")

Both clients retry what failed for want of the gateway, with backoff, reusing
one Idempotency-Key per submit; errors are `ShoalClientError`s, and an
`APIError` carries the problem's stable `code` (docs/errors.md).
"""

from shoal.client._async import AsyncClient
from shoal.client._calls import DEFAULT_URL, RetryPolicy
from shoal.client._errors import (
    APIError,
    Conflict,
    ConnectionFailed,
    InvalidRequest,
    JobFailed,
    NotFound,
    RateLimited,
    ServerError,
    ShoalClientError,
    Unauthorized,
    WaitTimedOut,
)
from shoal.client._sync import Client
from shoal.jobs import Audio, Job, JobError, JobStatus
from shoal.registry import QueueState
from shoal.voices import ClonedVoice, VoiceList

__all__ = [
    "DEFAULT_URL",
    "APIError",
    "AsyncClient",
    "Audio",
    "Client",
    "ClonedVoice",
    "Conflict",
    "ConnectionFailed",
    "InvalidRequest",
    "Job",
    "JobError",
    "JobFailed",
    "JobStatus",
    "NotFound",
    "QueueState",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "ShoalClientError",
    "Unauthorized",
    "VoiceList",
    "WaitTimedOut",
]
