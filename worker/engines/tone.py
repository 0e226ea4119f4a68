"""The `tone` engine: a fixed 100 ms, 440 Hz clip, at once.

Not speech: it exists so benchmarks and smoke tests measure the pipeline
(queue, job store, encoding, upload) without synthesis time in the way.
"""

from __future__ import annotations

import numpy as np

from shoal.voices import Catalog, Voice
from worker.engines.base import Speech, SynthesisRequest, stream_whole

SAMPLE_RATE = 22050
SECONDS = 0.1


class ToneEngine:
    name = "tone"
    slots = 1

    def __init__(self) -> None:
        t = np.arange(int(SAMPLE_RATE * SECONDS)) / SAMPLE_RATE
        self._clip = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        self._catalog = Catalog(
            engine=self.name,
            sample_rate=SAMPLE_RATE,
            default_voice="a4",
            voices=[Voice(id="a4", name="440 Hz tone", language=None, engine=self.name)],
            languages=None,
        )

    def catalog(self) -> Catalog:
        return self._catalog

    def synthesize(self, request: SynthesisRequest) -> Speech:
        return stream_whole(request, Speech(samples=self._clip, sample_rate=SAMPLE_RATE))
