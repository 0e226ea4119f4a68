"""POST /v1/tts: Fish Speech's own request (`ServeTTSRequest`), answered with audio bytes.

Clients of the self-hosted Fish Speech server and both Python clients of the
Fish Audio SDK (`fishaudio.FishAudio`, `fish_audio_sdk.Session`) work by
pointing their base URL here. The body is JSON or MessagePack; references
sent inline (recording + transcript) become a cloned voice of their own.
What shoal does with each field is in docs/compatibility.md.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.deps import CallerDep, Services, ServicesDep
from api.problems import problem_responses
from api.routes.jobs import IdempotencyKey
from api.speech import (
    ERROR_STATUSES,
    MSGPACK_TYPES,
    audio_pieces,
    read_body,
    request_body_docs,
    streaming_response,
    submit,
    validate,
    whole_audio,
)
from shoal.errors import InvalidRequest
from shoal.jobs import AudioFormat, EngineParams, JobRequest
from shoal.voice_store import check_reference, decode_recording

router = APIRouter(tags=["compatibility"])  # /v1/tts authenticates through CallerDep
FISH_PCM_RATE = 44100  # Fish Speech's own rate: what its clients assume of headerless PCM


class FishReference(BaseModel):
    audio: bytes = Field(description="The recording: bytes in MessagePack, base64 in JSON.")
    text: str = Field(description="What the recording says.")

    @field_validator("audio", mode="before")
    @classmethod
    def _base64_in_json(cls, audio: Any) -> Any:
        if isinstance(audio, str):
            try:
                return base64.b64decode(audio, validate=True)
            except binascii.Error as exc:
                raise ValueError("audio is a string but not base64") from exc
        return audio


class Prosody(BaseModel):
    speed: float = Field(1.0, ge=0.5, le=2.0, strict=True)
    volume: float = Field(0.0, strict=True, description="Only 0 (no change) is supported.")


class FishTTSRequest(BaseModel):
    """`ServeTTSRequest` of fish-speech, plus the fields the Fish Audio API adds."""

    # Newer SDKs send more: ignore it, like Fish does. Numbers and booleans are strict
    # (`"opus_bitrate": false` is a mistake); an enum stays lax, so "wav" is a format.
    model_config = ConfigDict(extra="ignore")

    text: str
    chunk_length: int = Field(200, ge=100, le=300, strict=True)
    format: AudioFormat = AudioFormat.WAV
    references: list[FishReference] = Field(default_factory=list, description="One at most.")
    reference_id: str | None = Field(None, description="A shoal voice id (GET /v1/voices).")
    seed: int | None = Field(None, strict=True)
    use_memory_cache: Literal["on", "off"] = Field("off", description="Ignored: always cached.")
    normalize: bool = Field(
        True, strict=True, description="Ignored (fish-speech 0.1.0 ignores it too)."
    )
    streaming: bool = Field(False, strict=True)
    max_new_tokens: int = Field(1024, strict=True)
    top_p: float = Field(0.8, strict=True)
    repetition_penalty: float = Field(1.1, strict=True)
    temperature: float = Field(0.8, strict=True)
    sample_rate: int | None = Field(None, strict=True)
    prosody: Prosody | None = None
    latency: str | None = Field(None, description="Ignored.")
    mp3_bitrate: int | None = Field(None, strict=True, description="Ignored.")
    opus_bitrate: int | None = Field(None, strict=True, description="Ignored.")


async def _inline_voice(services: Services, caller: str, reference: FishReference) -> str:
    """A reference sent with the request, as a voice the worker can load."""
    catalog = await services.catalog()
    if catalog is not None and not catalog.cloning:
        raise InvalidRequest(
            f"the {catalog.engine} engine cannot clone voices, so references cannot be used; "
            "drop them, or run workers with SHOAL_ENGINE=fish-speech",
            code="voice_not_supported",
        )
    recording = await anyio.to_thread.run_sync(decode_recording, reference.audio)
    transcript = check_reference(recording, reference.text, services.settings)
    voice = await services.voices.inline(
        caller, reference.audio, recording, transcript, services.settings.retention_seconds
    )
    return voice.id


def _job(body: FishTTSRequest, voice: str | None) -> JobRequest:
    if body.prosody is not None and body.prosody.volume != 0:
        raise InvalidRequest(
            "prosody.volume is not supported; leave it at 0 and adjust the volume on playback",
            code="unsupported_parameter",
        )
    params = {
        "chunk_length": body.chunk_length,
        "seed": body.seed,
        "max_new_tokens": body.max_new_tokens,
        "top_p": body.top_p,
        "repetition_penalty": body.repetition_penalty,
        "temperature": body.temperature,
    }
    rate = body.sample_rate or (FISH_PCM_RATE if body.format is AudioFormat.PCM else None)
    fields = {
        "text": body.text,
        "voice": voice,
        "format": body.format,
        "engine_params": validate(EngineParams, params),
        "speed": body.prosody.speed if body.prosody else 1.0,
        "sample_rate": rate,
        "stream": body.streaming,
    }
    return validate(JobRequest, fields)


@router.post(
    "/v1/tts",
    summary="Synthesize (Fish Speech API)",
    response_class=Response,
    responses={
        200: {"content": {fmt.content_type: {} for fmt in AudioFormat}, "description": "Audio."},
        **problem_responses(400, *ERROR_STATUSES),
    },
    openapi_extra=request_body_docs(FishTTSRequest, ["application/json", *sorted(MSGPACK_TYPES)]),
)
async def tts(
    request: Request,
    services: ServicesDep,
    caller: CallerDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Speak `text` and answer with the audio (streamed as it is made with `streaming`).

    Synchronous over the queue: the job is an ordinary one (its id is in the
    `x-shoal-job-id` header); after `SHOAL_SYNC_WAIT_SECONDS` without audio the
    answer is 504 with that id to poll.
    """
    body = validate(FishTTSRequest, await read_body(request))
    if len(body.references) > 1:
        raise InvalidRequest(
            f"{len(body.references)} references were sent; shoal clones a voice from one "
            "recording: send the best one",
            code="too_many_references",
        )
    voice = body.reference_id
    if voice is None and body.references:
        voice = await _inline_voice(services, caller, body.references[0])
    job_id = await submit(services, _job(body, voice), caller, idempotency_key, request)
    if body.streaming:
        pieces = audio_pieces(services, job_id)
        return await streaming_response(pieces, body.format.content_type, job_id)
    return await whole_audio(services, job_id)


class FishHealth(BaseModel):
    status: str = Field(examples=["ok"])


@router.get("/v1/health", summary="Fish Speech's health check")
async def health() -> FishHealth:
    return FishHealth(status="ok")
