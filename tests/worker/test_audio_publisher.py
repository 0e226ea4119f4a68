"""Publishing a streamed job's pieces to its Redis Stream, encoded, on a real Redis."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import redis

from shoal import keys
from shoal.audio_stream import AudioStreamWriter
from shoal.jobs import AudioFormat, JobInput
from shoal.settings import Settings
from worker.audio import StreamEncoder
from worker.audio_publisher import AudioPublisher

SILENCE = np.zeros(2205, dtype=np.float32)
SPEECH = (0.3 * np.sin(np.arange(4410) / 5)).astype(np.float32)


@pytest.fixture
def raw_redis(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis_url)  # bytes: the pieces are audio
    yield client
    client.close()


def publisher(client: redis.Redis, job_id: str, audio_format: AudioFormat) -> AudioPublisher:
    job = JobInput(text="x", format=audio_format, stream=True)
    writer = AudioStreamWriter(client, job_id, attempt=1, ttl_seconds=60)
    return AudioPublisher(writer, StreamEncoder(22050, job))


def entries(client: redis.Redis, job_id: str) -> list[dict[bytes, bytes]]:
    stream: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(keys.audio_stream(job_id))  # type: ignore[assignment]
    return [fields for _, fields in stream]


def test_leading_silence_waits_for_speech(raw_redis: redis.Redis) -> None:
    pcm = publisher(raw_redis, "job_p", AudioFormat.PCM)
    pcm.on_audio(SILENCE)
    assert entries(raw_redis, "job_p") == []  # nothing heard yet: nothing sent
    pcm.on_audio(SPEECH)
    pcm.on_audio(SILENCE)  # a pause after speech goes out at once
    pcm.finish()
    published = entries(raw_redis, "job_p")
    assert [entry[b"seq"] for entry in published] == [b"0", b"1", b"2"]
    assert [entry[b"end"] for entry in published] == [b"0", b"0", b"1"]
    assert len(published[0][b"data"]) == 2 * (len(SILENCE) + len(SPEECH))  # held, then speech
    assert len(published[1][b"data"]) == 2 * len(SILENCE)


def test_a_silent_job_publishes_nothing(raw_redis: redis.Redis) -> None:
    mp3 = publisher(raw_redis, "job_q", AudioFormat.MP3)
    for _ in range(3):
        mp3.on_audio(SILENCE)
    assert entries(raw_redis, "job_q") == []  # the job fails with no_speech: no stream at all
