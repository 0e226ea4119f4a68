"""Emulated GPU time, for load tests on machines without a GPU.

Wraps a real engine so that each job takes `audio seconds x rtf` of wall time,
like a GPU engine at that real-time factor would, and so that a streamed job's
pieces arrive when such an engine would have made them. Off unless
SHOAL_EMULATE_RTF is set.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import numpy.typing as npt

from shoal.voices import Catalog
from worker.engines.base import Engine, Speech, SynthesisRequest

_POLL_SECONDS = 0.05


class EmulatedGpuTime:
    def __init__(self, engine: Engine, rtf: float) -> None:
        self.inner = engine
        self.rtf = rtf
        self.name = engine.name
        self.slots = engine.slots

    def catalog(self) -> Catalog:
        return self.inner.catalog()

    def synthesize(self, request: SynthesisRequest) -> Speech:
        started = time.monotonic()
        inner = request
        if request.on_audio is not None:
            on_audio, rate, produced = request.on_audio, self.inner.catalog().sample_rate, 0

            def paced(samples: npt.NDArray[np.float32]) -> None:
                nonlocal produced
                produced += len(samples)
                _sleep_until(started + produced / rate * self.rtf, request)
                on_audio(samples)

            inner = dataclasses.replace(request, on_audio=paced)
        speech = self.inner.synthesize(inner)
        _sleep_until(started + speech.duration_seconds * self.rtf, request)
        return speech


def _sleep_until(deadline: float, request: SynthesisRequest) -> None:
    while not request.should_stop() and time.monotonic() < deadline:
        time.sleep(min(_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
