"""Emulated GPU time: a job, and each piece of a streamed one, takes its audio x the factor."""

from __future__ import annotations

import time

import numpy as np

from shoal.voices import Catalog
from worker.engines.base import Speech, SynthesisRequest
from worker.engines.emulation import EmulatedGpuTime

RATE = 8000
PIECE_SECONDS = (0.4, 0.2, 0.6)


class Pieces:
    """An engine that makes its audio at once, in three pieces."""

    name = "pieces"
    slots = 1

    def catalog(self) -> Catalog:
        return Catalog(engine=self.name, sample_rate=RATE)

    def synthesize(self, request: SynthesisRequest) -> Speech:
        pieces = [np.full(int(s * RATE), 0.1, dtype=np.float32) for s in PIECE_SECONDS]
        for piece in pieces:
            if request.on_audio is not None:
                request.on_audio(piece)
        return Speech(np.concatenate(pieces), RATE)


def test_each_piece_arrives_no_sooner_than_a_gpu_would_make_it() -> None:
    rtf = 0.5
    arrivals: list[float] = []
    started = time.monotonic()
    speech = EmulatedGpuTime(Pieces(), rtf).synthesize(
        SynthesisRequest("x", on_audio=lambda piece: arrivals.append(time.monotonic()))
    )
    finished = time.monotonic()
    made = np.cumsum(PIECE_SECONDS) * rtf
    assert len(arrivals) == 3
    assert all(at - started >= due - 0.01 for at, due in zip(arrivals, made, strict=True))
    assert arrivals == sorted(arrivals)
    assert finished - started >= speech.duration_seconds * rtf - 0.01


def test_a_stop_request_ends_the_wait() -> None:
    started = time.monotonic()
    EmulatedGpuTime(Pieces(), 100.0).synthesize(SynthesisRequest("x", should_stop=lambda: True))
    assert time.monotonic() - started < 60  # not the 120 s the factor would take
