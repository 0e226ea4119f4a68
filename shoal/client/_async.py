"""The asynchronous client: the same calls as `Client`, awaited."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import httpx

from shoal.client._calls import DEFAULT_URL, Call, Calls, RetryPolicy, check
from shoal.client._errors import ConnectionFailed, JobFailed, WaitTimedOut
from shoal.client._sync import auth_headers, poll_interval
from shoal.jobs import Job, JobStatus
from shoal.registry import QueueState
from shoal.voices import ClonedVoice, VoiceList

T = TypeVar("T")


class AsyncClient:
    """`Client` for asyncio: `async with AsyncClient(url, api_key) as shoal: ...`."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url or os.environ.get("SHOAL_URL") or DEFAULT_URL
        key = api_key if api_key is not None else os.environ.get("SHOAL_API_KEY")
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=auth_headers(key), timeout=timeout, transport=transport
        )
        self._calls = Calls()
        self.retry = RetryPolicy(max_retries, backoff)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, *_: type[BaseException] | BaseException | TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _run(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = await self._http.request(
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
            await asyncio.sleep(delay)
            attempt += 1

    async def submit(self, text: str, **fields: Any) -> Job:
        return await self._run(self._calls.submit(text, **fields))

    async def get(self, job_id: str) -> Job:
        return await self._run(self._calls.get(job_id))

    async def cancel(self, job_id: str) -> Job:
        return await self._run(self._calls.cancel(job_id))

    async def wait(self, job_id: str, seconds: float = 300.0) -> Job:
        deadline = time.monotonic() + seconds
        for round_ in itertools.count():
            job = await self.get(job_id)
            if job.status.is_terminal:
                return job
            if time.monotonic() >= deadline:
                raise WaitTimedOut(job, seconds)
            await asyncio.sleep(min(poll_interval(round_), max(0.0, deadline - time.monotonic())))
        raise AssertionError("unreachable")  # pragma: no cover

    async def audio(self, job_id: str) -> bytes:
        return await self._run(self._calls.audio(job_id))

    async def download(self, job_id: str, path: str | Path) -> Path:
        target = anyio.Path(path)
        await target.write_bytes(await self.audio(job_id))
        return Path(target)

    async def stream(self, job_id: str) -> AsyncIterator[bytes]:
        async with self._http.stream("GET", f"/v1/jobs/{job_id}/stream") as response:
            if not response.is_success:
                await response.aread()
                check(response)
            async for chunk in response.aiter_bytes():
                yield chunk

    async def say(self, text: str, seconds: float = 300.0, **fields: Any) -> tuple[Job, bytes]:
        job = await self.wait((await self.submit(text, **fields)).id, seconds)
        if job.status is not JobStatus.SUCCEEDED:
            raise JobFailed(job)
        return job, await self.audio(job.id)

    async def redeliver_webhook(self, job_id: str) -> Job:
        return await self._run(self._calls.redeliver_webhook(job_id))

    async def voices(self) -> VoiceList:
        return await self._run(self._calls.voices())

    async def create_voice(
        self, audio: bytes, transcript: str, name: str | None = None
    ) -> ClonedVoice:
        return await self._run(self._calls.create_voice(audio, transcript, name))

    async def get_voice(self, voice_id: str) -> ClonedVoice:
        return await self._run(self._calls.get_voice(voice_id))

    async def delete_voice(self, voice_id: str) -> None:
        await self._run(self._calls.delete_voice(voice_id))

    async def queue(self) -> QueueState:
        return await self._run(self._calls.queue())
