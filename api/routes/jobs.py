"""/v1/jobs: submit, poll, download, cancel."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import RedirectResponse

from api.deps import CallerDep, Services, ServicesDep, api_key
from api.metrics import JOBS_CANCELED, JOBS_SUBMITTED
from api.observe import request_id
from api.problems import problem_responses
from api.routes.voices import check_voice
from shoal.errors import Conflict, InvalidRequest, NotFound, Unavailable
from shoal.jobs import Job, JobRecord, JobRequest, JobStatus
from shoal.logs import get_logger
from shoal.ssrf import check_at_submit
from shoal.store import EVENT_FOR_STATUS, Created
from shoal.views import present_job
from shoal.webhooks import WebhookSpec

log = get_logger(__name__)
router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(api_key)])

_PREFER_WAIT = re.compile(r"(?:^|[;,\s])wait\s*=\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
IdempotencyKey = Annotated[
    str | None,
    Header(
        description="Retrying with the same key and body returns the same job, for as "
        "long as the job exists (SHOAL_RETENTION_SECONDS).",
        json_schema_extra={"pattern": _IDEMPOTENCY_KEY.pattern, "maxLength": 255},
    ),
]


_CREATE_EXAMPLE = {
    "text": "Hello from shoal.",
    "voice": "en-us",
    "format": "mp3",
    "metadata": {"order": "1234"},
}


def job_not_found(job_id: str) -> NotFound:
    return NotFound(f"no job {job_id!r}: the id is wrong or the job expired", code="job_not_found")


def owned_by(record: JobRecord, caller: str) -> bool:
    """Jobs belong to the key that made them; records from before owners belong to all."""
    return record.owner is None or record.owner == caller


async def load_job(services: Services, job_id: str, caller: str) -> JobRecord:
    """The caller's job; another key's job is a 404 too, as if it did not exist."""
    record = await services.store.get(job_id)
    if record is None or not owned_by(record, caller):
        raise job_not_found(job_id)
    return record


async def present(services: ServicesDep, record: JobRecord) -> Job:
    """The job as clients see it, with its webhook's delivery state."""
    webhook = None
    if record.webhook is not None:
        event = EVENT_FOR_STATUS.get(record.status)
        webhook = await services.deliveries.status(record.id, record.webhook, event)
    return present_job(record, services.storage, services.settings, webhook)


async def _check_webhook(services: ServicesDep, spec: WebhookSpec) -> None:
    if not services.settings.webhook_secret:
        raise Unavailable(
            "webhooks are not configured on this server (SHOAL_WEBHOOK_SECRET is empty); "
            "poll GET /v1/jobs/{id} instead",
            code="webhooks_not_configured",
        )
    await check_at_submit(spec.url, services.webhook_allow)


def _json(job: Job, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Serialize once, in pydantic's core: FastAPI would validate `job` again first."""
    return Response(job.model_dump_json(), status, headers, media_type="application/json")


def _prefer_wait(prefer: str | None, cap: float) -> float:
    match = _PREFER_WAIT.search(prefer or "")
    return min(float(match.group(1)), cap) if match else 0.0


@dataclass(frozen=True)
class Accepted:
    created: Created
    headers: dict[str, str]  # the caller's rate-limit quota (RateLimit-*), if limits are on


async def accept(
    services: Services,
    body: JobRequest,
    caller: str,
    idempotency_key: str | None,
    hold_seconds: float = 0.0,
    request: str = "",
) -> Accepted:
    """Check a job request, take it from the caller's quota and queue it: what every route
    that makes a job does.

    `hold_seconds`: how long this request stays open; a replay of its Idempotency-Key
    meanwhile is 409 (in progress). The synchronous compatible routes hold nothing: a
    retry of theirs (its connection lost) joins the wait for the same job. `request`:
    the request id, kept with the job so its whole life greps by one id.
    """
    if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
        raise InvalidRequest(
            "Idempotency-Key must be 1-255 printable ASCII characters",
            code="invalid_idempotency_key",
        )
    await check_voice(services, body.voice, body.language, caller)
    if body.webhook is not None:
        await _check_webhook(services, body.webhook)
    quota = await services.rate_limiter.take(caller)
    created = await services.store.create(
        body, caller, idempotency_key, hold_seconds, request_id=request
    )
    if created.record is not None:
        JOBS_SUBMITTED.labels(services.settings.engine, body.format.value).inc()
    return Accepted(created, quota.headers() if quota else {})


async def _wait(services: ServicesDep, job_id: str, seconds: float) -> JobRecord | None:
    """Hold the request until the job ends, or None at once when too many are waiting.

    Each waiter holds a Redis connection: `SHOAL_MAX_WAITERS` bounds them per
    gateway. One event loop per process, so the count needs no lock.
    """
    if services.waiting >= services.settings.max_waiters:
        return None
    services.waiting += 1
    try:
        return await services.store.wait(job_id, seconds)
    finally:
        services.waiting -= 1


@router.post(
    "",
    status_code=202,
    response_model=Job,
    summary="Submit a synthesis job",
    responses={
        200: {"model": Job, "description": "Finished within `Prefer: wait`."},
        **problem_responses(400, 401, 409, 413, 422, 429, 503),
    },
    openapi_extra={"requestBody": {"content": {"application/json": {"example": _CREATE_EXAMPLE}}}},
)
async def create_job(
    http: Request,
    body: JobRequest,
    services: ServicesDep,
    caller: CallerDep,
    idempotency_key: IdempotencyKey = None,
    prefer: Annotated[
        str | None,
        Header(description="`wait=N`: hold the response up to N seconds for the job to finish."),
    ] = None,
) -> Response:
    """Queue a job; `202` with the job at once, or `200` once it finished within `Prefer: wait`."""
    wait = _prefer_wait(prefer, services.settings.max_wait_seconds)
    accepted = await accept(
        services, body, caller, idempotency_key, hold_seconds=wait, request=request_id(http.scope)
    )
    created = accepted.created
    headers = {"Location": f"/v1/jobs/{created.job_id}", **accepted.headers}
    record = created.record
    if record is None:
        headers["Idempotent-Replayed"] = "true"
    log.info("job queued", job_id=created.job_id, replayed=record is None)
    waited = None
    try:
        waited = await _wait(services, created.job_id, wait) if wait else None
        if waited is not None:
            headers["Preference-Applied"] = f"wait={wait:g}"
            record = waited
        elif record is None:
            record = await services.store.get(created.job_id)
    finally:
        if wait and idempotency_key is not None and created.record is not None:
            await services.store.settle(caller, idempotency_key)  # replays may answer now
    if record is None:  # expired between write and read: only with absurd retention settings
        raise job_not_found(created.job_id)
    status = 200 if record.status.is_terminal and waited is not None else 202
    return _json(await present(services, record), status, headers)


@router.get(
    "/{job_id}", summary="Get a job", response_model=Job, responses=problem_responses(401, 404)
)
async def get_job(job_id: str, services: ServicesDep, caller: CallerDep) -> Response:
    return _json(await present(services, await load_job(services, job_id, caller)))


@router.get(
    "/{job_id}/audio",
    summary="Download a job's audio",
    status_code=307,
    response_class=RedirectResponse,
    responses={
        307: {"description": "Redirect to a presigned URL."},
        **problem_responses(401, 404, 409),
    },
)
async def get_audio(job_id: str, services: ServicesDep, caller: CallerDep) -> RedirectResponse:
    record = await load_job(services, job_id, caller)
    if not record.status.is_terminal:
        raise Conflict(
            f"job {job_id} is {record.status}; poll GET /v1/jobs/{job_id} until it succeeds",
            code="job_not_finished",
        )
    job = present_job(record, services.storage, services.settings)
    if job.audio is None:
        raise Conflict(f"job {job_id} {record.status} and has no audio", code="job_has_no_audio")
    return RedirectResponse(job.audio.url, status_code=307)


@router.post("/{job_id}/cancel", summary="Cancel a job", responses=problem_responses(401, 404, 409))
async def cancel_job(job_id: str, services: ServicesDep, caller: CallerDep) -> Job:
    """Cancel a queued or running job; canceling a canceled job is a no-op."""
    await load_job(services, job_id, caller)
    transition = await services.store.cancel(job_id)
    if transition.result == "missing":
        raise job_not_found(job_id)
    if transition.ok:
        JOBS_CANCELED.labels(transition.previous).inc()
        log.info("job canceled", job_id=job_id, state=transition.previous)
    if not transition.ok and transition.previous != JobStatus.CANCELED:
        raise Conflict(
            f"job {job_id} already {transition.previous}; "
            "only queued or running jobs can be canceled",
            code="job_finished",
        )
    return await present(services, await load_job(services, job_id, caller))


@router.post(
    "/{job_id}/webhook/redeliver",
    status_code=202,
    summary="Send the job's latest webhook event again",
    responses=problem_responses(401, 404, 409),
)
async def redeliver_webhook(job_id: str, services: ServicesDep, caller: CallerDep) -> Job:
    """Queue the latest event again, with its original `webhook-id`.

    Also re-enables a URL that answered 410 Gone. Useful after fixing a receiver.
    """
    record = await load_job(services, job_id, caller)
    if record.webhook is None:
        raise Conflict(f"job {job_id} has no webhook", code="no_webhook")
    event = EVENT_FOR_STATUS.get(record.status)
    sent = event is not None and await services.deliveries.redeliver(
        job_id, event, record.webhook.url, services.settings.retention_seconds
    )
    if not sent:
        raise Conflict(
            f"job {job_id} has sent no webhook event yet (it is {record.status}, and its "
            f"webhook subscribes to {', '.join(record.webhook.events)})",
            code="no_webhook_event",
        )
    return await present(services, record)
