"""Streamed jobs: each piece the engine speaks is encoded and published at once.

The engine calls `on_audio` with consecutive pieces while it synthesizes; each
becomes the next bytes of the job's file in its format and goes to the job's
audio stream (`shoal.audio_stream`), where the gateway relays it to clients
before the job ends. `finish` publishes the encoder's tail and marks the end.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import redis

from shoal.audio_stream import AudioStreamWriter
from shoal.jobs import JobRecord
from shoal.settings import Settings
from worker.audio import StreamEncoder


class AudioPublisher:
    def __init__(self, writer: AudioStreamWriter, encoder: StreamEncoder) -> None:
        self.writer = writer
        self.encoder = encoder

    def on_audio(self, samples: npt.NDArray[np.float32]) -> None:
        self.writer.append(self.encoder.feed(samples))

    def finish(self) -> None:
        self.writer.append(self.encoder.finish(), end=True)


def publisher_for(
    client: redis.Redis, record: JobRecord, engine_rate: int, settings: Settings
) -> AudioPublisher | None:
    """A publisher for a job that asked to be streamed; None for the others."""
    if not record.input.stream:
        return None
    writer = AudioStreamWriter(
        client, record.id, record.attempts, settings.audio_stream_ttl_seconds
    )
    return AudioPublisher(writer, StreamEncoder(engine_rate, record.input))
