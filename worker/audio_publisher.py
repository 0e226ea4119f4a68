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
from worker.engines.base import Speech


class AudioPublisher:
    """Silence at the start is held back until speech comes: a job whose text makes
    no audible speech (it fails with `no_speech`) then publishes nothing, and its
    reader gets that error instead of a stream cut short."""

    def __init__(self, writer: AudioStreamWriter, encoder: StreamEncoder) -> None:
        self.writer = writer
        self.encoder = encoder
        self._held: list[npt.NDArray[np.float32]] | None = []

    def on_audio(self, samples: npt.NDArray[np.float32]) -> None:
        if self._held is not None:
            self._held.append(samples)
            if not Speech(samples, 1).audible():
                return
            samples, self._held = np.concatenate(self._held), None
        self.writer.append(self.encoder.feed(samples))

    def finish(self) -> None:
        """After the whole speech was found audible: the rest of the file, and its end."""
        held = np.concatenate(self._held) if self._held else None
        self._held = None
        data = self.encoder.feed(held) if held is not None else b""
        self.writer.append(data + self.encoder.finish(), end=True)


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
