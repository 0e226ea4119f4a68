"""The synchronous client."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from shoal.client._calls import DEFAULT_URL, Call, Calls, RetryPolicy, check
from shoal.client._errors import ConnectionFailed, JobFailed, WaitTimedOut
from shoal.jobs import Job, JobStatus
from shoal.registry import QueueState
from shoal.voices import ClonedVoice, VoiceList

T = TypeVar("T")
POLL_SECONDS = (0.1, 0.2, 0.5, 1.0)  # waiting for a job: quick at first, then each second


def poll_interval(round_: int) -> float:
    return POLL_SECONDS[min(round_, len(POLL_SECONDS) - 1)]


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class Client:
    """A shoal gateway: `Client(url, api_key)`, else `SHOAL_URL` and `SHOAL_API_KEY`.

    Calls that failed for want of the gateway (connection refused, 429, 503, a
    proxy's 502/504) are retried with backoff; a submit keeps one
    Idempotency-Key across its tries, so it never makes two jobs.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url or os.environ.get("SHOAL_URL") or DEFAULT_URL
        key = api_key if api_key is not None else os.environ.get("SHOAL_API_KEY")
        self._http = httpx.Client(
            base_url=self.url, headers=auth_headers(key), timeout=timeout, transport=transport
        )
        self._calls = Calls()
        self.retry = RetryPolicy(max_retries, backoff)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _run(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    call.method,
                    call.path,
                    json=call.json,
                    data=call.data,
                    files=call.files,
                    headers=call.headers,
                    follow_redirects=call.follow_redirects,
                )
            except httpx.TransportError as exc:
                delay = self.retry.after_error(call, exc, attempt)
                if delay is None:
                    raise ConnectionFailed(f"{call.method} {self.url}{call.path}: {exc}") from exc
            else:
                delay = self.retry.after_response(call, response, attempt)
                if delay is None:
                    return call.parse(response)
            time.sleep(delay)
            attempt += 1

    # Jobs.
    def submit(self, text: str, **fields: Any) -> Job:
        """Queue a job: `voice`, `language`, `format`, `engine_params`, `speed`,
        `sample_rate`, `stream`, `metadata`, `webhook`; `idempotency_key`, `wait` (s)."""
        return self._run(self._calls.submit(text, **fields))

    def get(self, job_id: str) -> Job:
        return self._run(self._calls.get(job_id))

    def cancel(self, job_id: str) -> Job:
        return self._run(self._calls.cancel(job_id))

    def wait(self, job_id: str, seconds: float = 300.0) -> Job:
        """The job once it is finished (succeeded, failed or canceled); WaitTimedOut if not."""
        deadline = time.monotonic() + seconds
        for round_ in itertools.count():
            job = self.get(job_id)
            if job.status.is_terminal:
                return job
            if time.monotonic() >= deadline:
                raise WaitTimedOut(job, seconds)
            time.sleep(min(poll_interval(round_), max(0.0, deadline - time.monotonic())))
        raise AssertionError("unreachable")  # pragma: no cover

    def audio(self, job_id: str) -> bytes:
        return self._run(self._calls.audio(job_id))

    def download(self, job_id: str, path: str | Path) -> Path:
        target = Path(path)
        target.write_bytes(self.audio(job_id))
        return target

    def stream(self, job_id: str) -> Iterator[bytes]:
        """The job's audio as it is made (a job submitted with `stream=True`), piece by piece."""
        with self._http.stream("GET", f"/v1/jobs/{job_id}/stream") as response:
            if not response.is_success:
                response.read()
                check(response)
            yield from response.iter_bytes()

    def say(self, text: str, seconds: float = 300.0, **fields: Any) -> tuple[Job, bytes]:
        """Submit, wait, download: the finished job and its audio; JobFailed if it failed."""
        job = self.wait(self.submit(text, **fields).id, seconds)
        if job.status is not JobStatus.SUCCEEDED:
            raise JobFailed(job)
        return job, self.audio(job.id)

    def redeliver_webhook(self, job_id: str) -> Job:
        return self._run(self._calls.redeliver_webhook(job_id))

    # Voices and the queue.
    def voices(self) -> VoiceList:
        return self._run(self._calls.voices())

    def create_voice(self, audio: bytes, transcript: str, name: str | None = None) -> ClonedVoice:
        return self._run(self._calls.create_voice(audio, transcript, name))

    def get_voice(self, voice_id: str) -> ClonedVoice:
        return self._run(self._calls.get_voice(voice_id))

    def delete_voice(self, voice_id: str) -> None:
        self._run(self._calls.delete_voice(voice_id))

    def queue(self) -> QueueState:
        return self._run(self._calls.queue())
