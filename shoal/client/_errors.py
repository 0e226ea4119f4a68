"""What the client raises: every failure is a ShoalClientError.

ShoalClientError
├── ConnectionFailed      the gateway could not be reached (after retries)
├── APIError              the gateway answered 4xx/5xx: `status`, `code`, `detail`
│   ├── InvalidRequest    400, 422: fix the request (code says what)
│   ├── Unauthorized      401: missing or wrong API key
│   ├── NotFound          404: no such job or voice (or it expired)
│   ├── Conflict          409: not in a state that allows the call
│   ├── RateLimited       429: too many requests (after retries)
│   └── ServerError       5xx: the gateway or what it depends on (after retries)
├── JobFailed             the job ended failed or canceled: `job.error.code`
└── WaitTimedOut          the job was still running when the wait ended: `job`
"""

from __future__ import annotations

from typing import Any

from shoal.jobs import Job


class ShoalClientError(Exception):
    """Anything that went wrong talking to a shoal gateway."""


class ConnectionFailed(ShoalClientError):
    pass


class APIError(ShoalClientError):
    """A problem answer (RFC 9457): branch on `code`, show `detail`."""

    def __init__(self, status: int, code: str, detail: str, problem: dict[str, Any]) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.problem = problem


class InvalidRequest(APIError):
    pass


class Unauthorized(APIError):
    pass


class NotFound(APIError):
    pass


class Conflict(APIError):
    pass


class RateLimited(APIError):
    pass


class ServerError(APIError):
    pass


_BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    422: InvalidRequest,
    429: RateLimited,
}


def api_error(status: int, problem: dict[str, Any]) -> APIError:
    kind = _BY_STATUS.get(status, ServerError if status >= 500 else APIError)
    code = str(problem.get("code") or f"http_{status}")
    detail = str(problem.get("detail") or problem.get("title") or "no detail given")
    return kind(status, code, detail, problem)


class JobFailed(ShoalClientError):
    """The job ended without audio; `code` is the job's error code."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.code = job.error.code if job.error else job.status.value
        reason = job.error.message if job.error else "no reason recorded"
        super().__init__(f"job {job.id} {job.status}: {self.code}: {reason}")


class WaitTimedOut(ShoalClientError):
    def __init__(self, job: Job, seconds: float) -> None:
        self.job = job
        super().__init__(f"job {job.id} is still {job.status} after {seconds:g} s")
