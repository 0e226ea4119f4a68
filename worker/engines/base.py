"""The engine interface: text in, float PCM out.

An engine is loaded once per worker process, before the worker consumes. The
worker then calls `synthesize` from `slots` threads at once, one job each: an
engine that batches (continuous batching on a GPU) says how many jobs it serves
together; one that cannot says 1. Engines know nothing of HTTP or Celery.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from shoal.jobs import EngineParams
from shoal.voices import Catalog, VoiceRecord


@dataclass(frozen=True)
class Speech:
    samples: npt.NDArray[np.float32]  # mono, in [-1, 1]
    sample_rate: int

    @property
    def duration_seconds(self) -> float:
        return len(self.samples) / self.sample_rate

    def audible(self, threshold: float = 1e-3) -> bool:
        """False for empty or silent output (e.g. text of only invisible characters)."""
        return bool(len(self.samples)) and float(np.max(np.abs(self.samples))) >= threshold


def stream_whole(request: SynthesisRequest, speech: Speech) -> Speech:
    """For engines that make the audio in one piece: hand it to `on_audio`, if asked."""
    if request.on_audio is not None and len(speech.samples):
        request.on_audio(speech.samples)
    return speech


def _never() -> bool:
    return False


@dataclass(frozen=True)
class SynthesisRequest:
    text: str
    voice: str | None = None  # resolved against the catalog; None: the engine chooses
    reference: VoiceRecord | None = None  # a cloned voice (engines whose catalog clones)
    language: str | None = None
    params: EngineParams = field(default_factory=EngineParams)
    # Polled between steps: True once the job was canceled or lost its lease.
    should_stop: Callable[[], bool] = _never
    # Streaming: called, in order, with each consecutive piece of the audio as soon
    # as it is ready; the pieces joined are exactly the returned Speech's samples.
    on_audio: Callable[[npt.NDArray[np.float32]], None] | None = None


class Engine(Protocol):
    name: str
    # Jobs synthesized at once: the worker calls `synthesize` from this many threads.
    slots: int

    def catalog(self) -> Catalog: ...

    def synthesize(self, request: SynthesisRequest) -> Speech: ...
