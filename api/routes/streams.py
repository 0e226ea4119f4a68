"""GET /v1/jobs/{id}/stream: a job's audio as the worker speaks it."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from api.deps import CallerDep, ServicesDep, api_key
from api.problems import Problem
from api.routes.jobs import load_job
from api.speech import audio_pieces, streaming_response

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(api_key)])


@router.get(
    "/{job_id}/stream",
    summary="Stream a job's audio as it is made",
    response_class=Response,
    responses={
        200: {"description": "The audio, from its first piece."},
        **{
            status: {"model": Problem, "content": {"application/problem+json": {}}}
            for status in (401, 404, 409, 422, 500, 502, 503, 504)
        },
    },
)
async def stream_audio(job_id: str, services: ServicesDep, caller: CallerDep) -> Response:
    """The audio of a job submitted with `stream: true`, piece by piece as the worker
    speaks it, from the first piece however late you connect; for any other job, its
    file once it succeeds. Waits up to `SHOAL_SYNC_WAIT_SECONDS` for each piece.
    """
    record = await load_job(services, job_id, caller)
    pieces = audio_pieces(services, job_id)
    return await streaming_response(pieces, record.input.format.content_type, job_id)
