"""A streamed job's audio, piece by piece, in a Redis Stream of its own.

The worker appends each piece of the encoded file as the engine makes it (the
last one marked `end`); the gateway reads from the first entry, so a reader
that arrives late catches up, and several can read at once. The stream is
bounded (`MAX_ENTRIES`) and expires `SHOAL_AUDIO_STREAM_TTL_SECONDS` after its
last piece: it is a way to hear the audio early, the stored file is the record.

Each entry carries its sequence number and the run (attempt) that made it, so
a reader notices a gap (trimmed or expired entries) and a job that started
again on another worker after losing its first one mid-stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
import redis.asyncio as aredis

from shoal import keys
from shoal.errors import ShoalError, Unavailable

MAX_ENTRIES = 10_000
_READ_COUNT = 64


class StreamInterrupted(ShoalError):
    """The stream cannot go on: pieces are missing, or another run took the job over."""

    status = 502
    code = "stream_interrupted"


def _redis_down(exc: redis.RedisError) -> Unavailable:
    return Unavailable(f"Redis is unreachable: {exc}", code="redis_unavailable")


class AudioStreamWriter:
    """The worker's side: one writer per run of a job."""

    def __init__(self, client: redis.Redis, job_id: str, attempt: int, ttl_seconds: int) -> None:
        self.redis = client
        self.key = keys.audio_stream(job_id)
        self.attempt = attempt
        self.ttl_seconds = ttl_seconds
        self.seq = 0

    def append(self, data: bytes, *, end: bool = False) -> None:
        """Add a piece (nothing when it is empty, unless it ends the stream)."""
        if not data and not end:
            return
        fields: dict[str, bytes | int] = {
            "seq": self.seq,
            "attempt": self.attempt,
            "data": data,
            "end": int(end),
        }
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                if self.seq == 0:  # a new run starts afresh: no pieces of an earlier one
                    pipe.delete(self.key)
                pipe.xadd(self.key, fields, maxlen=MAX_ENTRIES, approximate=True)  # type: ignore[arg-type]
                pipe.expire(self.key, self.ttl_seconds)
                pipe.execute()
        except redis.RedisError as exc:
            raise _redis_down(exc) from exc
        self.seq += 1


@dataclass(frozen=True)
class AudioPiece:
    data: bytes
    end: bool


class AudioStreamReader:
    """The gateway's side: reads one job's stream from its first piece, in order."""

    def __init__(self, client: aredis.Redis, job_id: str) -> None:
        self.redis = client  # one made without decode_responses: the pieces are bytes
        self.job_id = job_id
        self.key = keys.audio_stream(job_id)
        self._last_id = b"0-0"
        self._seq = 0
        self._attempt: bytes | None = None

    async def read(self, block_seconds: float | None = None) -> list[AudioPiece]:
        """The next pieces; waits up to `block_seconds` for one (None: do not wait)."""
        block = None if block_seconds is None else max(1, int(block_seconds * 1000))
        try:
            reply = await self.redis.xread(
                {self.key: self._last_id}, count=_READ_COUNT, block=block
            )
        except redis.RedisError as exc:
            raise _redis_down(exc) from exc
        streams: list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] = reply or []  # type: ignore[assignment]
        pieces = []
        for _, entries in streams:
            for entry_id, fields in entries:
                self._check(fields)
                self._last_id = entry_id
                self._seq += 1
                pieces.append(AudioPiece(fields[b"data"], fields[b"end"] == b"1"))
        return pieces

    def _check(self, fields: dict[bytes, bytes]) -> None:
        if self._attempt is None:
            self._attempt = fields[b"attempt"]
        if fields[b"attempt"] != self._attempt:
            raise StreamInterrupted(
                f"job {self.job_id} lost its worker mid-stream and runs again; fetch its audio "
                f"from GET /v1/jobs/{self.job_id}/audio once it succeeds",
                job_id=self.job_id,
            )
        if int(fields[b"seq"]) != self._seq:
            raise StreamInterrupted(
                f"the audio stream of job {self.job_id} lost pieces (it expired or was "
                f"trimmed); fetch the audio from GET /v1/jobs/{self.job_id}/audio",
                job_id=self.job_id,
            )


class AudioStreams:
    """The gateway's binary Redis client for audio streams (the main one decodes text)."""

    def __init__(self, redis_url: str) -> None:
        self.redis = aredis.Redis.from_url(redis_url)

    def reader(self, job_id: str) -> AudioStreamReader:
        return AudioStreamReader(self.redis, job_id)

    async def aclose(self) -> None:
        await self.redis.aclose()
