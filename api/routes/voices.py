"""/v1/voices: the voices jobs can name, and cloned voices for Fish Speech."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, File, Form, Response, UploadFile

from api.deps import CallerDep, Services, ServicesDep, api_key
from api.problems import problem_responses
from shoal.errors import InvalidRequest, NotFound
from shoal.voice_store import VOICE_ID_PREFIX, check_reference, decode_recording
from shoal.voices import ClonedVoice, VoiceList

router = APIRouter(prefix="/v1/voices", tags=["voices"], dependencies=[Depends(api_key)])


async def check_voice(
    services: Services, voice: str | None, language: str | None, caller: str
) -> None:
    """Refuse at submit a voice the job could never use (422), like the worker would.

    Another key's cloned voice is as unknown as one that does not exist.
    """
    catalog = await services.catalog()
    if voice is not None and (catalog is None or not catalog.has_voice(voice)):
        cloned = await services.voices.get(voice, caller)
        if cloned is not None:
            if catalog is not None and not catalog.cloning:
                raise InvalidRequest(
                    f"voice {voice!r} is a cloned voice; the {catalog.engine} engine cannot "
                    "speak cloned voices (Fish Speech can)",
                    code="voice_not_supported",
                )
            return
        if voice.startswith(VOICE_ID_PREFIX):  # a cloned voice's id, but not the caller's
            raise InvalidRequest(
                f"voice {voice!r} does not exist; GET /v1/voices lists your voices",
                code="unknown_voice",
            )
    if catalog is not None:  # no worker has started yet: the worker checks instead
        catalog.resolve(voice, language)


@router.get("", summary="List voices", responses=problem_responses(401, 503))
async def list_voices(services: ServicesDep, caller: CallerDep) -> VoiceList:
    """The engine's voices as its workers published them, and the caller's cloned voices."""
    catalog = await services.catalog()
    cloned = [record.public() for record in await services.voices.list(caller)]
    if catalog is None:
        return VoiceList(
            engine=services.settings.engine,
            default_voice=None,
            voices=[],
            languages=None,
            cloning=False,
            cloned_voices=cloned,
        )
    return VoiceList(
        engine=catalog.engine,
        default_voice=catalog.default_voice,
        voices=catalog.voices,
        languages=catalog.languages,
        cloning=catalog.cloning,
        cloned_voices=cloned,
    )


@router.post(
    "",
    status_code=201,
    summary="Clone a voice from a reference recording",
    responses=problem_responses(400, 401, 413, 422, 503),
)
async def create_voice(
    services: ServicesDep,
    caller: CallerDep,
    response: Response,
    audio: Annotated[
        UploadFile, File(description="Reference recording: WAV, FLAC, OGG or MP3, 2-30 s.")
    ],
    transcript: Annotated[
        str,
        Form(description="Exactly what the recording says.", json_schema_extra={"pattern": r"\S"}),
    ],
    name: Annotated[str | None, Form(max_length=128, description="A label for people.")] = None,
) -> ClonedVoice:
    """Store a reference recording and its transcript; jobs then pass `voice: <id>`."""
    data = await audio.read()
    recording = await anyio.to_thread.run_sync(decode_recording, data)
    text = check_reference(recording, transcript, services.settings)
    record = await services.voices.create(data, recording, text, name, caller)
    response.headers["Location"] = f"/v1/voices/{record.id}"
    return record.public()


@router.get("/{voice_id}", summary="Get a cloned voice", responses=problem_responses(401, 404))
async def get_voice(voice_id: str, services: ServicesDep, caller: CallerDep) -> ClonedVoice:
    record = await services.voices.get(voice_id, caller)
    if record is None:
        raise NotFound(f"no cloned voice {voice_id!r}", code="voice_not_found")
    return record.public()


@router.delete(
    "/{voice_id}",
    status_code=204,
    summary="Delete a cloned voice",
    responses=problem_responses(401, 404),
)
async def delete_voice(voice_id: str, services: ServicesDep, caller: CallerDep) -> Response:
    """Delete the voice and its recording; queued jobs that name it fail with unknown_voice."""
    if not await services.voices.delete(voice_id, caller):
        raise NotFound(f"no cloned voice {voice_id!r}", code="voice_not_found")
    return Response(status_code=204)
