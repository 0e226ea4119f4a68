"""POST /v1/audio/speech: OpenAI's speech request, answered with audio bytes.

The official `openai` client works with `base_url="http://<gateway>/v1"`.
OpenAI's voice names map to shoal voices (`SHOAL_OPENAI_VOICES`); `model` is
accepted and ignored (the server's engine speaks); `instructions` are refused,
no engine here can follow them. Errors come in OpenAI's JSON shape.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CallerDep, ServicesDep
from api.openai_errors import FIELD_NAMES, OpenAIRoute, openai_error_responses
from api.routes.jobs import IdempotencyKey
from api.speech import (
    ERROR_STATUSES,
    audio_pieces,
    streaming_response,
    submit,
    validate,
    whole_audio,
)
from shoal.errors import InvalidRequest, ShoalError
from shoal.jobs import AudioFormat, JobRequest
from shoal.logs import get_logger
from shoal.settings import Settings

log = get_logger(__name__)
router = APIRouter(tags=["compatibility"], route_class=OpenAIRoute)

OPENAI_VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer"}
    | {"verse", "marin", "cedar"}
)
OPENAI_PCM_RATE = 24000  # what OpenAI's headerless PCM is, and its clients assume


class VoiceId(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="A shoal voice id (GET /v1/voices).")


class SpeechRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Accepted and ignored: the server's engine speaks.")
    input: str = Field(description="The text to speak.")
    voice: str | VoiceId = Field(
        description="An OpenAI voice name (mapped by SHOAL_OPENAI_VOICES), or a shoal voice id."
    )
    instructions: str | None = Field(None, description="Not supported: refused when not empty.")
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)
    stream_format: Literal["sse", "audio"] | None = Field(
        None, description="Stream the audio as it is made: raw (`audio`) or as events (`sse`)."
    )


def shoal_voice(voice: str | VoiceId, settings: Settings) -> str | None:
    """The shoal voice for an OpenAI one; None: the engine's default voice."""
    name = voice.id if isinstance(voice, VoiceId) else voice
    mapped = settings.openai_voices.get(name.lower())
    if mapped is not None:
        return mapped
    return None if name.lower() in OPENAI_VOICES else name


def _job(body: SpeechRequest, settings: Settings) -> JobRequest:
    if body.instructions and body.instructions.strip():
        raise InvalidRequest(
            f"instructions are not supported: the {settings.engine} engine cannot follow them; "
            "leave them out",
            code="instructions_not_supported",
            param="instructions",
        )
    audio_format = AudioFormat(body.response_format)
    fields = {
        "text": body.input,
        "voice": shoal_voice(body.voice, settings),
        "format": audio_format,
        "speed": body.speed,
        "sample_rate": OPENAI_PCM_RATE if audio_format is AudioFormat.PCM else None,
        "stream": body.stream_format is not None,
    }
    return validate(JobRequest, fields, rename=FIELD_NAMES)


def _event(payload: dict[str, object]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _delta(data: bytes) -> bytes:
    return _event({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()})


async def _sse(pieces: AsyncIterator[bytes], characters: int) -> AsyncIterator[bytes]:
    """OpenAI's `speech.audio.delta` events, then `speech.audio.done` (usage in characters)."""
    yield _delta(await anext(pieces))  # an error before it is an ordinary error response
    try:
        async for data in pieces:
            yield _delta(data)
    except ShoalError as exc:  # after the first event: the stream can only say so and end
        log.warning("audio stream ended early", code=exc.code, error=exc.message)
        yield _event({"type": "error", "error": {"code": exc.code, "message": exc.message}})
        return
    usage = {"input_tokens": characters, "output_tokens": 0, "total_tokens": characters}
    yield _event({"type": "speech.audio.done", "usage": usage})


@router.post(
    "/v1/audio/speech",
    summary="Synthesize (OpenAI API)",
    response_class=Response,
    responses={
        200: {
            "description": "The audio; with `stream_format: sse`, OpenAI's audio events.",
            "content": {fmt.content_type: {} for fmt in AudioFormat} | {"text/event-stream": {}},
        },
        **openai_error_responses(*ERROR_STATUSES),
    },
)
async def speech(
    http: Request,
    body: SpeechRequest,
    services: ServicesDep,
    caller: CallerDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Speak `input` and answer with the audio (streamed as it is made with `stream_format`).

    Synchronous over the queue: the job is an ordinary one (its id is in the
    `x-shoal-job-id` header); after `SHOAL_SYNC_WAIT_SECONDS` without audio the
    answer is 504 with that id to poll.
    """
    job = _job(body, services.settings)
    job_id = await submit(services, job, caller, idempotency_key, http)
    if body.stream_format is None:
        return await whole_audio(services, job_id)
    pieces = audio_pieces(services, job_id)
    if body.stream_format == "sse":
        events = _sse(pieces, len(body.input))
        return await streaming_response(events, "text/event-stream", job_id)
    return await streaming_response(pieces, job.format.content_type, job_id)
