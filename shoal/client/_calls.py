"""The API's calls as data, shared by the sync and async clients, and when to retry one.

`Calls` builds each request and the function that reads its answer; the
clients only send them. A call is `repeatable` when sending it twice does no
harm: reads, cancel, and a submit, which carries one Idempotency-Key for all
its tries, so a retry after a lost answer gets the same job, not a second one.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel

from shoal.client._errors import api_error
from shoal.jobs import TRUSTED, Job
from shoal.registry import QueueState
from shoal.voices import ClonedVoice, VoiceList

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
DEFAULT_URL = "http://127.0.0.1:8000"
# Answers that say "not now": nothing was done, so any call may be sent again.
_REFUSED = frozenset({429, 503})
# Answers from a proxy that lost the upstream: the call may have been done.
_UPSTREAM_LOST = frozenset({502, 504})


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    repeatable: bool
    json: Any = None
    data: dict[str, str] | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    follow_redirects: bool = False


def check(response: httpx.Response) -> httpx.Response:
    """The response, or the APIError its problem body describes."""
    if response.is_success:
        return response
    try:
        problem = response.json()
    except ValueError:
        problem = {"detail": response.text[:500]}
    if not isinstance(problem, dict):
        problem = {"detail": str(problem)}
    raise api_error(response.status_code, problem)


def _job(response: httpx.Response) -> Job:
    return Job.model_validate(check(response).json(), context=TRUSTED)


def _model(model: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: model.model_validate(check(response).json())


def _content(response: httpx.Response) -> bytes:
    return check(response).content


def _nothing(response: httpx.Response) -> None:
    check(response)


class Calls:
    def submit(
        self,
        text: str,
        *,
        idempotency_key: str | None = None,
        wait: float | None = None,
        **fields: Any,
    ) -> Call[Job]:
        body = {"text": text, **{k: v for k, v in fields.items() if v is not None}}
        headers = {"Idempotency-Key": idempotency_key or f"shoal-client-{uuid.uuid4().hex}"}
        if wait:
            headers["Prefer"] = f"wait={wait:g}"
        return Call("POST", "/v1/jobs", _job, True, json=body, headers=headers)

    def get(self, job_id: str) -> Call[Job]:
        return Call("GET", f"/v1/jobs/{job_id}", _job, True)

    def cancel(self, job_id: str) -> Call[Job]:
        return Call("POST", f"/v1/jobs/{job_id}/cancel", _job, True)

    def audio(self, job_id: str) -> Call[bytes]:
        # A redirect to a presigned URL; httpx drops the API key on the way to another host.
        return Call("GET", f"/v1/jobs/{job_id}/audio", _content, True, follow_redirects=True)

    def redeliver_webhook(self, job_id: str) -> Call[Job]:
        return Call("POST", f"/v1/jobs/{job_id}/webhook/redeliver", _job, True)

    def voices(self) -> Call[VoiceList]:
        return Call("GET", "/v1/voices", _model(VoiceList), True)

    def create_voice(self, audio: bytes, transcript: str, name: str | None) -> Call[ClonedVoice]:
        data = {"transcript": transcript, **({"name": name} if name else {})}
        files = {"audio": ("reference", audio, "application/octet-stream")}
        return Call("POST", "/v1/voices", _model(ClonedVoice), False, data=data, files=files)

    def get_voice(self, voice_id: str) -> Call[ClonedVoice]:
        return Call("GET", f"/v1/voices/{voice_id}", _model(ClonedVoice), True)

    def delete_voice(self, voice_id: str) -> Call[None]:
        return Call("DELETE", f"/v1/voices/{voice_id}", _nothing, True)

    def queue(self) -> Call[QueueState]:
        return Call("GET", "/v1/queue", _model(QueueState), True)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; `Retry-After` wins when the gateway sends it."""

    max_retries: int = 3
    backoff: float = 0.5
    max_delay: float = 30.0

    def _delay(self, attempt: int) -> float:
        return float(min(self.max_delay, self.backoff * 2.0**attempt) * random.uniform(0.5, 1.0))

    def after_error(
        self, call: Call[Any], error: httpx.TransportError, attempt: int
    ) -> float | None:
        """Seconds to wait before trying again after a transport error, or None: give up."""
        if attempt >= self.max_retries:
            return None
        never_sent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)
        return self._delay(attempt) if never_sent or call.repeatable else None

    def after_response(
        self, call: Call[Any], response: httpx.Response, attempt: int
    ) -> float | None:
        """Seconds to wait before trying again after this answer, or None: it stands."""
        status = response.status_code
        if attempt >= self.max_retries:
            return None
        if status in _REFUSED or (status in _UPSTREAM_LOST and call.repeatable):
            if response.headers.get("x-should-retry") == "false":
                return None
            hinted = _retry_after(response)
            return min(self.max_delay, hinted) if hinted is not None else self._delay(attempt)
        return None
