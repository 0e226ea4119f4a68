"""Synchronous speech over the queue: what the Fish Speech and OpenAI routes share.

Each call makes an ordinary job (so leases, retries, cancel and metrics all
apply), then waits a bounded time (`SHOAL_SYNC_WAIT_SECONDS`) for its audio:
the whole file, or, for a streamed job, each piece as the worker publishes it.
A job that does not finish in time goes on running; the 504 names its id.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import anyio
import msgpack
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ValidationError

from api.deps import Services
from api.observe import request_id
from api.routes.jobs import accept, job_not_found
from shoal.audio_stream import StreamInterrupted
from shoal.errors import Conflict, InvalidRequest, ShoalError, Unavailable
from shoal.jobs import JobRecord, JobRequest, JobStatus

Model = TypeVar("Model", bound=BaseModel)
POLL_SECONDS = 1.0  # how often a waiting stream also looks at the job's state
MSGPACK_TYPES = frozenset({"application/msgpack", "application/x-msgpack"})
# Failure codes the request caused (retrying cannot help) and those a retry may fix.
_REQUEST_CODES = frozenset(
    {"no_speech", "unknown_voice", "unsupported_language", "voice_not_supported", "prompt_too_long"}
)
_TRANSIENT_CODES = frozenset({"gpu_out_of_memory", "storage_unavailable", "redis_unavailable"})


class MalformedBody(ShoalError):
    status = 400
    code = "malformed_body"


# What a synchronous speech request may answer instead of its audio (for the docs).
ERROR_STATUSES = (401, 404, 409, 413, 422, 429, 500, 503, 504)


class SynthesisFailed(ShoalError):
    status = 500
    code = "synthesis_failed"


class SynthesisTimeout(ShoalError):
    status = 504
    code = "synthesis_timeout"


def job_headers(job_id: str) -> dict[str, str]:
    return {"x-shoal-job-id": job_id, "Location": f"/v1/jobs/{job_id}"}


def _still_running(record: JobRecord, seconds: float) -> SynthesisTimeout:
    return SynthesisTimeout(
        f"job {record.id} is still {record.status} after {seconds:g} s and goes on: poll "
        f"GET /v1/jobs/{record.id}, then fetch GET /v1/jobs/{record.id}/audio",
        # OpenAI's clients retry a 504 unless told not to: that would queue the text again.
        headers={**job_headers(record.id), "x-should-retry": "false"},
        job_id=record.id,
    )


def job_failure(record: JobRecord) -> ShoalError:
    """The error a failed or canceled job answers with: its own code, and its id."""
    code = record.error.code if record.error else "synthesis_failed"
    reason = record.error.message if record.error else "no reason was recorded"
    kind: type[ShoalError] = SynthesisFailed
    if record.status is JobStatus.CANCELED:
        kind = Conflict
    elif code in _REQUEST_CODES:
        kind = InvalidRequest
    elif code in _TRANSIENT_CODES:
        kind = Unavailable
    return kind(
        f"job {record.id} {record.status}: {reason}",
        code=code,
        headers=job_headers(record.id),
        job_id=record.id,
    )


def validate(model: type[Model], data: Any, rename: dict[str, str] | None = None) -> Model:
    """`model` from `data`; invalid fields answer like any FastAPI body, named as the client did."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = []
        for error in exc.errors(include_url=False):
            loc = tuple((rename or {}).get(str(part), part) for part in error["loc"])
            errors.append({**error, "loc": ("body", *loc)})
        raise RequestValidationError(errors) from exc


async def read_body(request: Request) -> Any:
    """A JSON or MessagePack body (by Content-Type), decoded but not validated."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in MSGPACK_TYPES:
        try:
            return msgpack.unpackb(raw)
        except (ValueError, msgpack.UnpackException) as exc:
            raise MalformedBody(
                f"the body is not valid MessagePack: {exc}", code="malformed_msgpack"
            ) from exc
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise MalformedBody(
            f"the body is not valid JSON: {exc}; send JSON or application/msgpack",
            code="malformed_json",
        ) from exc


async def submit(
    services: Services,
    job: JobRequest,
    caller: str,
    idempotency_key: str | None,
    request: Request,
) -> str:
    accepted = await accept(
        services, job, caller, idempotency_key, request=request_id(request.scope)
    )
    return accepted.created.job_id


async def whole_audio(services: Services, job_id: str) -> Response:
    """The job's file once it succeeded; an error naming the job otherwise."""
    wait = services.settings.sync_wait_seconds
    record = await services.store.wait(job_id, wait)
    if record is None:
        raise job_not_found(job_id)
    if not record.status.is_terminal:
        raise _still_running(record, wait)
    if record.status is not JobStatus.SUCCEEDED or record.audio is None:
        raise job_failure(record)
    data = await anyio.to_thread.run_sync(services.storage.get, record.audio.key)
    return Response(data, media_type=record.audio.format.content_type, headers=job_headers(job_id))


async def _settle(services: Services, record: JobRecord, sent: bool) -> AsyncIterator[bytes]:
    """A finished job whose stream holds nothing more: its stored file, or why not."""
    if record.status is not JobStatus.SUCCEEDED or record.audio is None:
        raise job_failure(record)
    if sent:  # some pieces went out, and the rest expired
        raise StreamInterrupted(
            f"the audio stream of job {record.id} ended early; fetch the whole file from "
            f"GET /v1/jobs/{record.id}/audio",
            job_id=record.id,
        )
    # Not streamed, or its stream expired: the stored file, in one piece.
    yield await anyio.to_thread.run_sync(services.storage.get, record.audio.key)


async def audio_pieces(services: Services, job_id: str) -> AsyncIterator[bytes]:
    """The job's audio as the worker publishes it, from the first piece, until its end.

    Raises (before the first piece, so the route answers with an error) when the
    job fails, or when no piece came for `SHOAL_SYNC_WAIT_SECONDS`.
    """
    reader = services.streams.reader(job_id)
    wait = services.settings.sync_wait_seconds
    idle_until = time.monotonic() + wait
    sent = finished = False
    while True:
        # Once the job is finished, one last look without waiting: its end may be just in.
        pieces = await reader.read(None if finished else POLL_SECONDS)
        if pieces:
            idle_until = time.monotonic() + wait
            for piece in pieces:
                if piece.data:
                    sent = True
                    yield piece.data
                if piece.end:
                    return
            continue
        record = await services.store.get(job_id)
        if record is None:
            raise job_not_found(job_id)
        if finished:
            async for data in _settle(services, record, sent):
                yield data
            return
        finished = record.status.is_terminal
        if not finished and time.monotonic() > idle_until:
            raise _still_running(record, wait)


async def streaming_response(
    chunks: AsyncIterator[bytes], media_type: str, job_id: str
) -> StreamingResponse:
    """Stream `chunks`, once the first is ready: an error before it is an ordinary error."""
    first = await anext(chunks)

    async def body() -> AsyncIterator[bytes]:
        yield first
        async for chunk in chunks:
            yield chunk

    headers = {**job_headers(job_id), "Cache-Control": "no-store"}
    return StreamingResponse(body(), media_type=media_type, headers=headers)


def request_body_docs(model: type[BaseModel], content_types: list[str]) -> dict[str, Any]:
    """OpenAPI `requestBody` for a route that parses its own body, in several encodings."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    flat = inline(schema)
    return {
        "requestBody": {
            "required": True,
            "content": {content_type: {"schema": flat} for content_type in content_types},
        }
    }
