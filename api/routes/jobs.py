"""/v1/jobs: submit, poll, download, cancel."""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Response
from fastapi.responses import RedirectResponse

from api.deps import CallerDep, ServicesDep, api_key
from api.metrics import JOBS_SUBMITTED
from api.problems import Problem
from api.routes.voices import check_voice
from shoal.errors import Conflict, InvalidRequest, NotFound
from shoal.jobs import Audio, Job, JobRecord, JobRequest, JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(api_key)])

_PREFER_WAIT = re.compile(r"(?:^|[;,\s])wait\s*=\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def _problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": Problem, "content": {"application/problem+json": {}}}
        for status in statuses
    }


_CREATE_EXAMPLE = {
    "text": "Hello from shoal.",
    "voice": "en-us",
    "format": "mp3",
    "metadata": {"order": "1234"},
}


def _not_found(job_id: str) -> NotFound:
    return NotFound(f"no job {job_id!r}: the id is wrong or the job expired", code="job_not_found")


async def _load(services: ServicesDep, job_id: str) -> JobRecord:
    record = await services.store.get(job_id)
    if record is None:
        raise _not_found(job_id)
    return record


def present(services: ServicesDep, record: JobRecord) -> Job:
    """The job as clients see it, with a fresh presigned URL once it has audio."""
    audio = None
    if record.status is JobStatus.SUCCEEDED and record.audio is not None:
        settings = services.settings
        expires = (record.finished_at or time.time()) + settings.retention_seconds
        ttl = int(min(settings.audio_url_ttl_seconds, max(60, expires - time.time())))
        url, expires_at = services.storage.presign(record.audio.key, ttl)
        audio = Audio(url=url, expires_at=expires_at, **record.audio.model_dump(exclude={"key"}))
    return record.public(audio)


def _prefer_wait(prefer: str | None, cap: float) -> float:
    match = _PREFER_WAIT.search(prefer or "")
    return min(float(match.group(1)), cap) if match else 0.0


@router.post(
    "",
    status_code=202,
    summary="Submit a synthesis job",
    responses={
        200: {"model": Job, "description": "Finished within `Prefer: wait`."},
        **_problems(400, 401, 409, 413, 422, 503),
    },
    openapi_extra={"requestBody": {"content": {"application/json": {"example": _CREATE_EXAMPLE}}}},
)
async def create_job(
    body: JobRequest,
    services: ServicesDep,
    caller: CallerDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(description="Retrying with the same key and body returns the same job (24 h)."),
    ] = None,
    prefer: Annotated[
        str | None,
        Header(description="`wait=N`: hold the response up to N seconds for the job to finish."),
    ] = None,
) -> Job:
    """Queue a job; `202` with the job at once, or `200` once it finished within `Prefer: wait`."""
    if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
        raise InvalidRequest(
            "Idempotency-Key must be 1-255 printable ASCII characters",
            code="invalid_idempotency_key",
        )
    await check_voice(services, body.voice, body.language)
    created = await services.store.create(body, caller, idempotency_key)
    if created.created:
        JOBS_SUBMITTED.labels(services.settings.engine, body.format.value).inc()
    else:
        response.headers["Idempotent-Replayed"] = "true"
    wait = _prefer_wait(prefer, services.settings.max_wait_seconds)
    if wait:
        response.headers["Preference-Applied"] = f"wait={wait:g}"
        record = await services.store.wait(created.job_id, wait)
    else:
        record = await services.store.get(created.job_id)
    if record is None:  # expired between write and read: only with absurd retention settings
        raise _not_found(created.job_id)
    response.headers["Location"] = f"/v1/jobs/{record.id}"
    if record.status.is_terminal and wait:
        response.status_code = 200
    return present(services, record)


@router.get("/{job_id}", summary="Get a job", responses=_problems(401, 404))
async def get_job(job_id: str, services: ServicesDep) -> Job:
    return present(services, await _load(services, job_id))


@router.get(
    "/{job_id}/audio",
    summary="Download a job's audio",
    status_code=307,
    response_class=RedirectResponse,
    responses={307: {"description": "Redirect to a presigned URL."}, **_problems(401, 404, 409)},
)
async def get_audio(job_id: str, services: ServicesDep) -> RedirectResponse:
    record = await _load(services, job_id)
    if not record.status.is_terminal:
        raise Conflict(
            f"job {job_id} is {record.status}; poll GET /v1/jobs/{job_id} until it succeeds",
            code="job_not_finished",
        )
    job = present(services, record)
    if job.audio is None:
        raise Conflict(f"job {job_id} {record.status} and has no audio", code="job_has_no_audio")
    return RedirectResponse(job.audio.url, status_code=307)


@router.post("/{job_id}/cancel", summary="Cancel a job", responses=_problems(401, 404, 409))
async def cancel_job(job_id: str, services: ServicesDep) -> Job:
    """Cancel a queued or running job; canceling a canceled job is a no-op."""
    transition = await services.store.cancel(job_id)
    if transition.result == "missing":
        raise _not_found(job_id)
    if not transition.ok and transition.previous != JobStatus.CANCELED:
        raise Conflict(
            f"job {job_id} already {transition.previous}; "
            "only queued or running jobs can be canceled",
            code="job_finished",
        )
    return present(services, await _load(services, job_id))
