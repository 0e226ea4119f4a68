"""Emulated GPU time, for load tests on machines without a GPU.

Wraps a real engine so that each job takes `audio seconds x rtf` of wall time,
like a GPU engine at that real-time factor would. Off unless
SHOAL_EMULATE_RTF is set.
"""

from __future__ import annotations

import time

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
        speech = self.inner.synthesize(request)
        deadline = started + speech.duration_seconds * self.rtf
        while not request.should_stop() and time.monotonic() < deadline:
            time.sleep(min(_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        return speech
