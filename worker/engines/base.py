"""The engine interface: text in, float PCM out.

An engine is loaded once per worker process, before the worker consumes, and
then called for one job at a time. Engines know nothing of HTTP or Celery.
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


class Engine(Protocol):
    name: str

    def catalog(self) -> Catalog: ...

    def synthesize(self, request: SynthesisRequest) -> Speech: ...
