"""The one exception tree of shoal.

    ShoalError                 code + message; `status` is the HTTP status it maps to
    ├── InvalidRequest   422   input that can never succeed (text, voice, params)
    ├── NotFound         404   unknown or expired job / voice
    ├── Conflict         409   the job is not in a state that allows the call
    ├── Unauthorized     401   missing or wrong API key
    ├── TooManyRequests  429   a per-key limit (rate, queued jobs); retry later
    ├── Unavailable      503   Redis or storage unreachable, the queue full (retry later)
    └── SynthesisError   ---   a job that cannot be synthesized; it ends `failed`
        └── Canceled           the job was canceled or lost its lease mid-run

Redis, boto3 and engine errors are translated where they enter shoal; the
gateway turns every ShoalError into an RFC 9457 problem in one handler, and the
worker records a SynthesisError's code and message on the failed job.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ShoalError(Exception):
    status: ClassVar[int] = 500
    code: str = "internal_error"
    # Seconds a client should wait before trying again (the Retry-After header).
    retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if retry_after is not None:
            self.retry_after = retry_after
        self.headers = headers or {}  # sent with the error (e.g. RateLimit-*)
        self.extra = extra  # extra members of the problem document


class InvalidRequest(ShoalError):
    status = 422
    code = "invalid_request"


class NotFound(ShoalError):
    status = 404
    code = "not_found"


class Conflict(ShoalError):
    status = 409
    code = "conflict"


class Unauthorized(ShoalError):
    status = 401
    code = "unauthorized"


class TooManyRequests(ShoalError):
    status = 429
    code = "too_many_requests"
    retry_after = 5.0


class Unavailable(ShoalError):
    status = 503
    code = "unavailable"
    retry_after = 5.0


class SynthesisError(ShoalError):
    """A job that cannot succeed: retrying it would fail the same way."""

    code = "synthesis_failed"


class Canceled(SynthesisError):
    """The job stopped being ours while it ran (canceled, or its lease was lost)."""

    code = "canceled"
