"""A job's audio stream on a real Redis: late readers, gaps, runs that change hands."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio as aredis

from shoal import audio_stream, keys
from shoal.audio_stream import AudioPiece, AudioStreamWriter, StreamInterrupted
from shoal.settings import Settings


def read_all(settings: Settings, job_id: str, rounds: int = 1) -> list[AudioPiece]:
    async def run() -> list[AudioPiece]:
        client = aredis.Redis.from_url(settings.redis_url)
        try:
            reader = audio_stream.AudioStreamReader(client, job_id)
            pieces: list[AudioPiece] = []
            for _ in range(rounds):
                pieces += await reader.read(None)
            return pieces
        finally:
            await client.aclose()

    return asyncio.run(run())


def test_a_late_reader_gets_every_piece_in_order(
    settings: Settings, sync_redis: redis.Redis
) -> None:
    writer = AudioStreamWriter(sync_redis, "job_a", attempt=1, ttl_seconds=60)
    for data in (b"RIFF", b"", b"one", b"two"):
        writer.append(data)
    writer.append(b"tail", end=True)
    pieces = read_all(settings, "job_a")
    assert [p.data for p in pieces] == [b"RIFF", b"one", b"two", b"tail"]  # empty: not sent
    assert [p.end for p in pieces] == [False, False, False, True]
    assert 0 < sync_redis.ttl(keys.audio_stream("job_a")) <= 60


def test_pieces_trimmed_away_are_noticed(
    settings: Settings, sync_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audio_stream, "MAX_ENTRIES", 10)
    writer = AudioStreamWriter(sync_redis, "job_b", attempt=1, ttl_seconds=60)
    for index in range(400):
        writer.append(b"%d" % index)
    assert sync_redis.xlen(keys.audio_stream("job_b")) < 400
    with pytest.raises(StreamInterrupted) as raised:
        read_all(settings, "job_b")
    assert raised.value.code == "stream_interrupted"
    assert "GET /v1/jobs/job_b/audio" in raised.value.message


def test_a_run_that_takes_over_starts_a_fresh_stream(
    settings: Settings, sync_redis: redis.Redis
) -> None:
    first = AudioStreamWriter(sync_redis, "job_c", attempt=1, ttl_seconds=60)
    first.append(b"first run")

    async def interrupted() -> None:
        client = aredis.Redis.from_url(settings.redis_url)
        try:
            reader = audio_stream.AudioStreamReader(client, "job_c")
            assert [p.data for p in await reader.read(None)] == [b"first run"]
            second = AudioStreamWriter(sync_redis, "job_c", attempt=2, ttl_seconds=60)
            second.append(b"second run")
            with pytest.raises(StreamInterrupted, match="lost its worker"):
                await reader.read(None)
        finally:
            await client.aclose()

    asyncio.run(interrupted())
    # A reader that comes now hears only the run that goes on.
    assert [p.data for p in read_all(settings, "job_c")] == [b"second run"]
