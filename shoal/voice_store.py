"""Cloned voices: a reference recording and its transcript, shared by gateway and workers.

A voice is a Redis record (`keys.voice`, listed in `keys.VOICES`) plus objects
under `voices/<id>/` in storage: the recording as uploaded and, once a worker
encoded it, the codec's codes (one object per codec fingerprint, so other
workers load them instead of encoding again). The recording is written before
the record and the record is deleted before the objects, so a record never
names a missing recording; a job that names a deleted voice fails with
`unknown_voice`.

The gateway uses `AsyncVoiceStore`, workers `VoiceStore`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio
import numpy as np
import redis
import redis.asyncio as aredis
import soundfile as sf

from shoal import keys
from shoal.errors import InvalidRequest
from shoal.redis_client import as_unavailable
from shoal.settings import Settings
from shoal.storage import INLINE_VOICES_PREFIX, Storage
from shoal.voices import VoiceRecord

VOICE_PREFIX = "voices/"
INLINE_ID_PREFIX = INLINE_VOICES_PREFIX.removeprefix(VOICE_PREFIX)
VOICE_ID_PREFIX = "voice_"


def new_voice_id() -> str:
    """Server-generated, URL-safe and unguessable (128 random bits)."""
    return VOICE_ID_PREFIX + secrets.token_urlsafe(16)


def inline_voice_id(owner: str, audio: bytes, transcript: str) -> str:
    """The same reference sent again by the same caller is the same voice (codes reused)."""
    digest = hashlib.sha256(owner.encode() + b"\0" + transcript.encode() + b"\0" + audio)
    return INLINE_ID_PREFIX + base64.urlsafe_b64encode(digest.digest()[:16]).decode().rstrip("=")


def codes_key(voice_id: str, fingerprint: str) -> str:
    return f"{VOICE_PREFIX}{voice_id}/codes-{fingerprint}.npy"


@dataclass(frozen=True)
class Recording:
    samples: np.ndarray  # float32, frames x channels
    sample_rate: int
    format: str

    @property
    def duration_seconds(self) -> float:
        return len(self.samples) / self.sample_rate

    def mono(self) -> np.ndarray:
        return np.asarray(self.samples.mean(axis=1), dtype=np.float32)


def decode_recording(data: bytes) -> Recording:
    """Decode a recording with libsndfile (WAV, FLAC, OGG, MP3, ...); InvalidRequest if it can't."""
    try:
        with sf.SoundFile(io.BytesIO(data)) as file:
            audio_format = str(file.format).lower()
            samples = file.read(dtype="float32", always_2d=True)
            sample_rate = int(file.samplerate)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise InvalidRequest(
            f"the audio cannot be decoded ({exc}); send WAV, FLAC, OGG or MP3",
            code="invalid_audio",
        ) from exc
    return Recording(samples, sample_rate, audio_format)


def check_reference(recording: Recording, transcript: str, settings: Settings) -> str:
    """The transcript, stripped; InvalidRequest naming the first problem."""
    duration = recording.duration_seconds
    if duration < settings.voice_min_seconds:
        raise InvalidRequest(
            f"the recording lasts {duration:.2f} s; at least {settings.voice_min_seconds:g} s "
            "of clear speech is needed",
            code="audio_too_short",
        )
    if duration > settings.voice_max_seconds:
        raise InvalidRequest(
            f"the recording lasts {duration:.1f} s; the limit is {settings.voice_max_seconds:g} s: "
            "trim it to its best sentences",
            code="audio_too_long",
        )
    if not float(np.max(np.abs(recording.samples), initial=0.0)) > 1e-3:
        raise InvalidRequest("the recording is silent", code="audio_silent")
    text = transcript.strip()
    if not text:
        raise InvalidRequest(
            "transcript is empty; give the words the recording says", code="transcript_empty"
        )
    if len(text) > settings.voice_max_transcript_chars:
        raise InvalidRequest(
            f"transcript has {len(text)} characters; the limit is "
            f"{settings.voice_max_transcript_chars}",
            code="transcript_too_long",
        )
    return text


def _record(
    voice_id: str, recording: Recording, transcript: str, name: str | None, owner: str
) -> VoiceRecord:
    return VoiceRecord(
        id=voice_id,
        name=name,
        transcript=transcript,
        duration_seconds=round(recording.duration_seconds, 3),
        sample_rate=recording.sample_rate,
        format=recording.format,
        created_at=datetime.now(UTC),
        audio_key=f"{VOICE_PREFIX}{voice_id}/reference.{recording.format}",
        owner=owner,
    )


class VoiceStore:
    """Workers: read a voice, its recording, and the codes derived from it."""

    def __init__(self, client: redis.Redis, storage: Storage) -> None:
        self.redis = client
        self.storage = storage

    def get(self, voice_id: str) -> VoiceRecord | None:
        raw = self.redis.get(keys.voice(voice_id))
        return VoiceRecord.model_validate_json(raw) if raw else None

    def recording(self, voice: VoiceRecord) -> bytes:
        return self.storage.get(voice.audio_key)

    def load_codes(self, voice: VoiceRecord, fingerprint: str) -> bytes | None:
        return self.storage.get_optional(codes_key(voice.id, fingerprint))

    def save_codes(self, voice: VoiceRecord, fingerprint: str, data: bytes) -> None:
        key = codes_key(voice.id, fingerprint)
        self.storage.put(key, data, "application/octet-stream")
        if self.get(voice.id) is None:  # deleted meanwhile: leave nothing behind
            self.storage.delete([key])


class AsyncVoiceStore:
    """The gateway: create, list and delete voices without blocking its event loop."""

    def __init__(self, client: aredis.Redis, storage: Storage) -> None:
        self.redis = client
        self.storage = storage

    async def create(
        self, data: bytes, recording: Recording, transcript: str, name: str | None, owner: str
    ) -> VoiceRecord:
        record = _record(new_voice_id(), recording, transcript, name, owner)
        await anyio.to_thread.run_sync(
            self.storage.put, record.audio_key, data, f"audio/{recording.format}"
        )
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(keys.voice(record.id), record.model_dump_json())
                pipe.zadd(keys.VOICES, {record.id: time.time()})
                await pipe.execute()
        except BaseException as exc:  # no record: leave no recording behind either
            await anyio.to_thread.run_sync(self.storage.delete, [record.audio_key])
            if isinstance(exc, redis.RedisError):
                raise as_unavailable(exc) from exc
            raise
        return record

    async def inline(
        self, owner: str, data: bytes, recording: Recording, transcript: str, ttl_seconds: int
    ) -> VoiceRecord:
        """A voice for a reference sent inline with a request: unlisted, and it expires.

        Its id comes from the caller and the reference, so sending the same one again
        reuses the voice and the codes a worker made of it. The record lives
        `ttl_seconds` from when it was made; its objects expire by the bucket's rule.
        """
        voice_id = inline_voice_id(owner, data, transcript)
        existing = await self.get(voice_id, owner)
        if existing is not None:
            return existing
        record = _record(voice_id, recording, transcript, "inline reference", owner)
        await anyio.to_thread.run_sync(
            self.storage.put, record.audio_key, data, f"audio/{recording.format}"
        )
        try:
            await self.redis.set(keys.voice(voice_id), record.model_dump_json(), ex=ttl_seconds)
        except redis.RedisError as exc:
            raise as_unavailable(exc) from exc
        return record

    async def get(self, voice_id: str, caller: str) -> VoiceRecord | None:
        """The caller's voice; another key's voice is None, as if it did not exist."""
        raw = await self.redis.get(keys.voice(voice_id))
        record = VoiceRecord.model_validate_json(raw) if raw else None
        return record if record is not None and record.owned_by(caller) else None

    async def list(self, caller: str) -> list[VoiceRecord]:
        """The caller's voices, oldest first."""
        ids: list[str] = await self.redis.zrange(keys.VOICES, 0, -1)  # type: ignore[assignment]
        if not ids:
            return []
        raws = await self.redis.mget([keys.voice(voice_id) for voice_id in ids])
        records = (VoiceRecord.model_validate_json(raw) for raw in raws if raw)
        return [record for record in records if record.owned_by(caller)]

    async def delete(self, voice_id: str, caller: str) -> bool:
        """Forget the caller's voice, then delete its objects; False if it has none."""
        if await self.get(voice_id, caller) is None:
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.voice(voice_id))
            pipe.zrem(keys.VOICES, voice_id)
            deleted, _ = await pipe.execute()
        if not deleted:
            return False
        prefix = f"{VOICE_PREFIX}{voice_id}/"
        found = await anyio.to_thread.run_sync(self.storage.keys, prefix)
        await anyio.to_thread.run_sync(self.storage.delete, found)
        return True
