"""The job: its input, its states and the record both deployables read.

The models here are the whole contract between the gateway and the workers.
State changes happen only in `shoal.store`.
"""

from __future__ import annotations

import json
import re
import secrets
import unicodedata
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from shoal.settings import get_settings
from shoal.webhooks import WebhookSpec, WebhookStatus

MAX_METADATA_BYTES = 16_384
# Loose BCP-47: a primary subtag of 2-3 letters, then subtags of 1-8 alphanumerics.
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})


class AudioFormat(StrEnum):
    WAV = "wav"
    FLAC = "flac"
    MP3 = "mp3"
    OGG = "ogg"  # Vorbis
    OPUS = "opus"  # Opus in Ogg, at 48 kHz (or 8, 12, 16, 24 kHz when asked)
    AAC = "aac"  # AAC-LC in ADTS frames
    PCM = "pcm"  # raw signed 16-bit little-endian mono, no header

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self]

    @property
    def streamable(self) -> bool:
        """Whether the audio can be sent while it is made (every format but Vorbis)."""
        return self is not AudioFormat.OGG


_CONTENT_TYPES = {
    AudioFormat.WAV: "audio/wav",
    AudioFormat.FLAC: "audio/flac",
    AudioFormat.MP3: "audio/mpeg",
    AudioFormat.OGG: "audio/ogg",
    AudioFormat.OPUS: "audio/opus",
    AudioFormat.AAC: "audio/aac",
    AudioFormat.PCM: "audio/pcm",
}
# Rates every encoder accepts (the MPEG family's); Opus itself runs at 8-48 kHz.
SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


# Validation context for records read back from Redis: they were checked once at
# the gateway, and a setting changed since (a lower text limit) must not make
# them unreadable.
TRUSTED = {"trusted": True}


def _trusted(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("trusted"))


def _refuse_unspeakable(text: str) -> None:
    """Control characters (NUL, bell, escape...) and unpaired surrogates are refused.

    They carry no speech, break C engines (espeak reads NUL as the end) and
    cannot be stored as UTF-8. Whitespace controls (tab, newline...), format
    characters (bidi marks, joiners), emoji and combining marks are text.
    """
    for position, char in enumerate(text):
        category = unicodedata.category(char)
        if category == "Cs" or (category == "Cc" and not char.isspace()):
            raise PydanticCustomError(
                "invalid_text",
                "text contains U+{code:04X} at position {position}, "
                "a control character or an unpaired surrogate: remove it",
                {"code": ord(char), "position": position},
            )


def _refuse_surrogates(metadata: dict[str, Any]) -> None:
    try:
        json.dumps(metadata, ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        raise PydanticCustomError(
            "invalid_metadata",
            "metadata contains an unpaired surrogate (U+{code:04X}); send valid Unicode",
            {"code": ord(exc.object[exc.start])},
        ) from exc


def new_job_id() -> str:
    """Server-generated, URL-safe and unguessable (128 random bits)."""
    return "job_" + secrets.token_urlsafe(16)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EngineParams(_Strict):
    """Fish Speech sampling parameters, with Fish Speech's own ranges.

    The ranges are those of `ServeTTSRequest` in fish-speech 0.1.0
    (fish_speech/utils/schema.py): temperature and top_p 0.1-1.0,
    repetition_penalty 0.9-2.0, chunk_length 100-300. It leaves max_new_tokens
    (default 1024) and seed unbounded; here they are bounded by the model's
    context (8192 positions) and by 32 bits, which every generator accepts.
    """

    model_config = ConfigDict(extra="forbid", strict=True)  # `"seed": false` is a mistake

    temperature: float | None = Field(None, ge=0.1, le=1.0, examples=[0.8])
    top_p: float | None = Field(None, ge=0.1, le=1.0, examples=[0.8])
    repetition_penalty: float | None = Field(None, ge=0.9, le=2.0, examples=[1.1])
    max_new_tokens: int | None = Field(
        None,
        ge=0,
        le=8192,
        description="Semantic tokens (21.5 a second of audio) per chunk; 0: until end of speech.",
    )
    chunk_length: int | None = Field(
        None, ge=100, le=300, description="Characters per chunk of long text (default 200)."
    )
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="Same seed, same audio.")


class JobInput(_Strict):
    """What a client asks for. Validated once, at the gateway."""

    text: str = Field(
        description="Text to speak.",
        examples=["Hello from shoal."],
        json_schema_extra={"minLength": 1},
    )
    voice: str | None = Field(
        None,
        max_length=128,
        description="A voice id from GET /v1/voices; engine default if absent.",
    )
    language: str | None = Field(
        None,
        max_length=35,
        description="BCP-47 tag; picks a voice when `voice` is absent.",
        examples=["en-US", "de", "zh"],
    )
    format: AudioFormat = Field(default_factory=lambda: AudioFormat(get_settings().default_format))
    engine_params: EngineParams = Field(default_factory=EngineParams)
    speed: float = Field(
        1.0,
        ge=0.25,
        le=4.0,
        strict=True,
        description="Speaking rate: 2.0 is twice as fast, pitch kept.",
    )
    sample_rate: int | None = Field(
        None,
        strict=True,
        description="Resample to this rate (Hz); the engine's own rate when absent. "
        f"One of {', '.join(map(str, SAMPLE_RATES))}.",
        examples=[24000],
    )
    stream: StrictBool = Field(  # 0 and "yes" are mistakes, not booleans
        False,
        description="Publish the audio while it is synthesized, to read from "
        "GET /v1/jobs/{id}/stream before the job ends.",
    )

    @field_serializer("engine_params")
    def _only_given_params(self, params: EngineParams) -> dict[str, Any]:
        return params.model_dump(exclude_none=True)

    @field_validator("text")
    @classmethod
    def _text_fits(cls, text: str, info: ValidationInfo) -> str:
        if _trusted(info):
            return text
        if not text.strip():
            raise PydanticCustomError("text_empty", "text is empty; give the words to speak")
        _refuse_unspeakable(text)
        limit = get_settings().max_text_chars
        if len(text) > limit:
            raise PydanticCustomError(
                "text_too_long",
                "text has {length} characters; the limit is {limit}: split it into several jobs",
                {"length": len(text), "limit": limit},
            )
        return text

    @field_validator("sample_rate")
    @classmethod
    def _rate_is_standard(cls, rate: int | None) -> int | None:
        if rate is not None and rate not in SAMPLE_RATES:
            raise PydanticCustomError(
                "unsupported_sample_rate",
                "sample_rate {rate} is not one of {rates}",
                {"rate": rate, "rates": ", ".join(map(str, SAMPLE_RATES))},
            )
        return rate

    @model_validator(mode="after")
    def _stream_fits_format(self) -> Self:
        if self.stream and not self.format.streamable:
            raise PydanticCustomError(
                "format_not_streamable",
                "format {format!r} cannot be streamed; ask for opus, mp3 or another format",
                {"format": self.format.value},
            )
        return self

    @field_validator("language")
    @classmethod
    def _language_is_a_tag(cls, language: str | None) -> str | None:
        if language is not None and not _LANGUAGE_TAG.match(language):
            raise PydanticCustomError(
                "invalid_language",
                "language {language!r} is not a BCP-47 tag such as 'en-US'",
                {"language": language},
            )
        return language


class JobRequest(JobInput):
    """The body of POST /v1/jobs: the input plus what is only echoed or delivered."""

    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Opaque; echoed back on the job (16 KiB at most)."
    )
    webhook: WebhookSpec | None = Field(
        None, description="Signed POSTs (Standard Webhooks) when the job starts or ends."
    )

    def job_input(self) -> JobInput:
        """The synthesis part of the request (already validated: not validated again)."""
        return JobInput.model_construct(**{name: getattr(self, name) for name in _INPUT_FIELDS})

    @field_validator("metadata")
    @classmethod
    def _metadata_is_small(cls, metadata: dict[str, Any]) -> dict[str, Any]:
        _refuse_surrogates(metadata)
        size = len(json.dumps(metadata, separators=(",", ":")))
        if size > MAX_METADATA_BYTES:
            raise PydanticCustomError(
                "metadata_too_large",
                "metadata is {size} bytes of JSON; the limit is {limit}",
                {"size": size, "limit": MAX_METADATA_BYTES},
            )
        return metadata


_INPUT_FIELDS = tuple(JobInput.model_fields)


class StoredAudio(BaseModel):
    """The audio as the worker recorded it; the URL is made on each read."""

    key: str
    format: AudioFormat
    sample_rate: int
    duration_seconds: float
    bytes: int


class Audio(BaseModel):
    url: str = Field(description="Presigned URL; plain GET fetches the audio.")
    expires_at: datetime = Field(description="When `url` stops working.")
    format: AudioFormat
    sample_rate: int = Field(examples=[22050])
    duration_seconds: float
    bytes: int


class JobError(BaseModel):
    code: str = Field(examples=["unsupported_language"])
    message: str


JobId = Annotated[str, Field(examples=["job_Qx3n0hW1i2Cq4fJf8y2k9A"])]


class Job(BaseModel):
    """A job as clients see it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "job_Qx3n0hW1i2Cq4fJf8y2k9A",
                    "status": "succeeded",
                    "created_at": "2026-12-01T22:39:39.062Z",
                    "started_at": "2026-12-01T22:39:39.075Z",
                    "finished_at": "2026-12-01T22:39:39.301Z",
                    "attempts": 1,
                    "input": {
                        "text": "Hello from shoal.",
                        "voice": None,
                        "language": None,
                        "format": "mp3",
                        "engine_params": {},
                    },
                    "audio": {
                        "url": "https://audio.example.com/shoal-audio/audio/job_Qx3n0hW1i2Cq4fJf8y2k9A/1.mp3?X-Amz-Signature=...",
                        "expires_at": "2026-12-01T23:39:39Z",
                        "format": "mp3",
                        "sample_rate": 22050,
                        "duration_seconds": 1.42,
                        "bytes": 11520,
                    },
                    "error": None,
                    "metadata": {"order": "1234"},
                    "webhook": None,
                }
            ]
        }
    )

    id: JobId
    status: JobStatus
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0
    input: JobInput
    audio: Audio | None = None
    error: JobError | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    webhook: WebhookStatus | None = None


class JobRecord(BaseModel):
    """A job as stored in Redis: a flat hash of strings (see `shoal.store`)."""

    id: str
    status: JobStatus
    input: JobInput
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    owner: str | None = None  # the caller (API key identity) that submitted it
    lease_token: str | None = None
    worker: str | None = None
    audio: StoredAudio | None = None
    error: JobError | None = None
    webhook: WebhookSpec | None = None
    request_id: str | None = None  # the submit's X-Request-ID: logs of the job's life carry it

    @classmethod
    def from_hash(cls, fields: dict[str, str]) -> Self:
        data: dict[str, Any] = {k: v for k, v in fields.items() if v != ""}
        for key in ("input", "metadata", "audio", "error", "webhook"):
            if key in data:
                data[key] = json.loads(data[key])
        return cls.model_validate(data, context=TRUSTED)

    def public(self, audio: Audio | None = None, webhook: WebhookStatus | None = None) -> Job:
        return Job(
            id=self.id,
            status=self.status,
            created_at=_utc(self.created_at),
            started_at=_utc(self.started_at),
            finished_at=_utc(self.finished_at),
            attempts=self.attempts,
            input=self.input,
            audio=audio,
            error=self.error,
            metadata=self.metadata,
            webhook=webhook,
        )


def _utc(epoch: float | None) -> Any:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)
