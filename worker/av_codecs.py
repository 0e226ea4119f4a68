"""FFmpeg's encoders, muxers and filters through PyAV, one piece of audio at a time.

Both classes keep their state between pieces, so a stream cut into any pieces
comes out as if it had been processed whole: an encoder's frames run on across
pieces, and the time-stretch filter's windows overlap them.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import av
import av.error
import numpy as np
import numpy.typing as npt

Samples = npt.NDArray[np.float32]
# Filters hold back about one frame they were pushed: small frames keep that short.
_FRAME_SAMPLES = 1024
# Ogg pages are flushed after this many microseconds of audio (FFmpeg's default is 1 s).
_OGG_PAGE_MICROSECONDS = "20000"


def _frames(samples: Samples, rate: int, first_pts: int) -> list[av.AudioFrame]:
    frames = []
    for start in range(0, len(samples), _FRAME_SAMPLES):
        piece = np.ascontiguousarray(samples[start : start + _FRAME_SAMPLES], dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(piece[None, :], format="flt", layout="mono")
        frame.sample_rate = rate
        frame.pts = first_pts + start
        frame.time_base = Fraction(1, rate)
        frames.append(frame)
    return frames


class _Sink:
    """A write-only file for the muxer: it never seeks, so output can leave at once."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


class AvEncoder:
    """A container being written: `feed` returns the bytes each piece completes."""

    def __init__(self, muxer: str, codec: str, rate: int, out_rate: int | None = None) -> None:
        """Samples at `rate` in; a file at `out_rate` (the encoder resamples) out."""
        self._sink = _Sink()
        options = {"page_duration": _OGG_PAGE_MICROSECONDS} if muxer == "ogg" else {}
        self._container = av.open(self._sink, mode="w", format=muxer, options=options)
        self._stream: av.AudioStream = self._container.add_stream(  # type: ignore[assignment]
            codec, rate=out_rate or rate, layout="mono"
        )
        self._rate = rate
        self._pts = 0

    def feed(self, samples: Samples) -> bytes:
        for frame in _frames(samples, self._rate, self._pts):
            self._container.mux(self._stream.encode(frame))
        self._pts += len(samples)
        return self._sink.take()

    def finish(self) -> bytes:
        self._container.mux(self._stream.encode(None))
        self._container.close()
        return self._sink.take()


def _tempo_steps(speed: float) -> list[float]:
    """FFmpeg's atempo takes 0.5-2.0 per filter: a chain of them reaches 0.25-4.0."""
    steps = []
    while speed < 0.5:
        steps.append(0.5)
        speed /= 0.5
    while speed > 2.0:
        steps.append(2.0)
        speed /= 2.0
    return [*steps, speed]


class Shaper:
    """Speed (WSOLA time-stretch, pitch kept) and sample-rate conversion, as a filter graph."""

    def __init__(self, rate: int, speed: float, out_rate: int) -> None:
        self._rate = rate
        self._pts = 0
        self._graph = av.filter.Graph()
        nodes = [
            self._graph.add_abuffer(
                format="flt", layout="mono", sample_rate=rate, time_base=Fraction(1, rate)
            )
        ]
        if speed != 1.0:
            nodes += [self._graph.add("atempo", f"{step:.6f}") for step in _tempo_steps(speed)]
        if out_rate != rate:
            nodes.append(self._graph.add("aresample", str(out_rate)))
        nodes.append(self._graph.add("abuffersink"))
        for source, target in itertools.pairwise(nodes):
            source.link_to(target)
        self._graph.configure()

    def _pull(self) -> Samples:
        pieces = []
        while True:
            try:
                frame = self._graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                break
            pieces.append(frame.to_ndarray().reshape(-1).astype(np.float32, copy=False))
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)

    def feed(self, samples: Samples) -> Samples:
        for frame in _frames(samples, self._rate, self._pts):
            self._graph.push(frame)
        self._pts += len(samples)
        return self._pull()

    def finish(self) -> Samples:
        self._graph.push(None)
        return self._pull()
