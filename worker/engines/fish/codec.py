"""The codec, batched across jobs: codes to audio in bounded windows, on a stream of its own.

The language model hands over windows of a sequence's codes as they are
confirmed (before its end of speech): the first `window` frames of a chunk,
then `window - overlap` frames at a time, each decoded with the `overlap`
frames before it as left context (the codec is causal: its convolutions and
attention look back only, so a window's output past its context matches a
whole-chunk decode up to the attention's reach beyond the context), and
right-padded to one of two lengths (128 or 256 frames for windows of 256),
which does not change the frames kept. Memory stays bounded by one
call's frames, whatever the length of a text.

One thread takes every window waiting, decodes them in as few calls as their
padded lengths allow (up to `batch_frames` frames a call), under bf16 autocast
on CUDA, on its own CUDA stream so decoding overlaps the language model's
steps, and hands the audio to each sequence's job in order. A call that fails
is retried window by window, so a window that cannot be decoded fails only its
own job.

Compiled (SHOAL_FISH_COMPILE), the decoder is specialised to each padded length
and dynamic in the number of windows only: on an H200 that decodes 870-915
audio-seconds a second at 8-16 windows of 256 frames, where a dynamic length
made it 590-610 and eager PyTorch 480-500. A call has two windows at least
(a spare one of zeros), so that one compiled graph serves every count.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from shoal.logs import get_logger
from worker.engines.fish._compat import no_kernel_tuning
from worker.engines.fish.handoff import Handoff
from worker.engines.fish.model import FishModel
from worker.engines.fish.sequence import Audio, Done, Sequence

log = get_logger(__name__)

FRAME_STEP = 32  # windows are padded to a multiple of this many frames, then to a length


@dataclass
class Window:
    sequence: Sequence
    codes: Handoff | None  # (codebooks, context + frames) on the device; None: no frames
    context: int  # leading frames that only give context
    frames: int  # frames whose audio this window yields
    last: bool  # the sequence's final window: its job hears Done after it

    @property
    def padded(self) -> int:
        return -(-(self.context + self.frames) // FRAME_STEP) * FRAME_STEP


def plan(
    start: int, available: int, window: int, overlap: int, final: bool
) -> list[tuple[int, int, int]]:
    """(context start, start, end) of the windows that cover frames start..available-1.

    Full windows only, unless `final`: then the remainder too.
    """
    spans = []
    while start < available:
        begin = start - min(start, overlap)
        end = min(begin + window, available)
        if end < begin + window and not final:
            break
        spans.append((begin, start, end))
        start = end
    return spans


def lengths_for(window: int) -> list[int]:
    """The padded lengths of codec calls: half the window (most tails), then the window.

    Each length costs a warm start one trace of the compiled decoder (about 3 s
    on an H200), so there are two: a tail of under a quarter window pays for
    its padding instead (64 frames: about 3 ms of the codec's GPU time).
    """
    top = -(-window // FRAME_STEP) * FRAME_STEP
    half = -(-top // 2 // FRAME_STEP) * FRAME_STEP
    return sorted({half, top})


class Codec:
    def __init__(self, fm: FishModel, window: int, overlap: int, batch_frames: int) -> None:
        if not 0 <= overlap < window:
            raise ValueError("the codec's overlap must be shorter than its window")
        self.fm = fm
        self.codec = fm.codec
        self.window, self.overlap = window, overlap
        self.lengths = lengths_for(window)
        self.batch_frames = max(batch_frames, self.lengths[-1])
        self.hop = int(self.codec.frame_length)  # samples per frame
        cuda = fm.device.type == "cuda"
        stream = torch.cuda.Stream(device=fm.device) if cuda else None  # type: ignore[no-untyped-call]
        self.stream: torch.cuda.Stream | None = stream
        self.lock = threading.Lock()  # one user of the codec (and its stream) at a time
        self._decoder: Callable[[torch.Tensor], torch.Tensor] = self.codec.decoder
        if fm.compile:
            no_kernel_tuning()
            self._decoder = torch.compile(self.codec.decoder, dynamic=False)
        self._queue: queue.SimpleQueue[Window] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="fish-codec", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def put(self, window: Window) -> None:
        self._queue.put(window)

    @contextlib.contextmanager
    def _on_stream(self) -> Iterator[None]:
        autocast = torch.autocast(
            device_type=self.fm.device.type,
            dtype=self.fm.precision,
            enabled=self.fm.device.type == "cuda" and self.fm.precision != torch.float32,
        )
        stream = torch.cuda.stream(self.stream) if self.stream else contextlib.nullcontext()
        with self.lock, stream, autocast, torch.inference_mode():
            yield

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Audio (batch, samples) of codes (batch, codebooks, frames), on the device."""
        count = codes.shape[0]
        if self.compiled and count == 1:  # see the module's docstring
            codes = torch.cat([codes, torch.zeros_like(codes)])
        z = self.codec.quantizer.decode(codes.long())
        if self.compiled:
            torch._dynamo.maybe_mark_dynamic(z, 0)  # the count of windows, not their length
        audio: torch.Tensor = self._decoder(z)
        return audio[:count, 0].float()

    def decode_whole(self, codes: torch.Tensor) -> npt.NDArray[np.float32]:
        """Audio of one chunk's codes (codebooks, frames) in one piece: tests and warm-up."""
        with self._on_stream():
            samples = self.decode(codes.to(self.fm.device)[None])[0]
            out: npt.NDArray[np.float32] = samples.cpu().numpy()
        return out

    def encode(self, samples: npt.NDArray[np.float32]) -> torch.Tensor:
        """Codes (codebooks x frames, int32, on the CPU) of mono audio at the codec's rate."""
        with self._on_stream():
            audio = torch.from_numpy(samples).to(self.fm.device)[None, None, :]
            lengths = torch.tensor([audio.shape[-1]], device=self.fm.device, dtype=torch.long)
            indices, _ = self.codec.encode(audio.float(), lengths)
            codes: torch.Tensor = indices[0].to(device="cpu", dtype=torch.int32)
        return codes

    def warm_up(self, codebooks: int) -> float:
        """Compile (when enabled) at the shapes serving uses; returns the seconds it took.

        Should Inductor fail on this codec, it runs eager (about half as fast), with a warning.
        """
        started = time.perf_counter()
        size = min(int(self.codec.quantizer.quantizer.codebook_size), 64)
        for frames in reversed(self.lengths):
            codes = torch.randint(0, size, (2, codebooks, frames), device=self.fm.device)
            try:
                with self._on_stream():
                    self.decode(codes).cpu()
            except Exception as exc:
                if self._decoder is self.codec.decoder:
                    raise
                log.warning("the codec does not compile; decoding eagerly", error=str(exc))
                self._decoder = self.codec.decoder
        seconds = time.perf_counter() - started
        log.info("codec warmed up", seconds=round(seconds, 2), compiled=self.compiled)
        return seconds

    @property
    def compiled(self) -> bool:
        return self._decoder is not self.codec.decoder

    def _serve(self) -> None:
        while True:
            pending = [self._queue.get()]
            frames = self.length(pending[0])
            while frames < self.batch_frames:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                pending.append(item)
                frames += self.length(item)
            audio = self._decode_all([w for w in pending if w.codes and not w.sequence.closed])
            for window in pending:  # in order: a job's windows reach it in order
                if window.sequence.closed:
                    continue
                samples = audio.get(id(window))
                if samples is not None:
                    window.sequence.events.put(Audio(window.sequence, samples))
                if window.last:
                    window.sequence.events.put(Done(window.sequence))

    def _decode_all(self, windows: list[Window]) -> dict[int, npt.NDArray[np.float32]]:
        """Audio of each window, by id; a window that cannot be decoded fails its sequence."""
        out: dict[int, npt.NDArray[np.float32]] = {}
        by_length: dict[int, list[Window]] = {}
        for window in windows:
            by_length.setdefault(self.length(window), []).append(window)
        for length, group in sorted(by_length.items()):
            per_call = max(1, self.batch_frames // length)
            for first in range(0, len(group), per_call):
                batch = group[first : first + per_call]
                try:
                    out.update(self._decode_batch(batch, length))
                except Exception as exc:
                    if len(batch) == 1:
                        log.warning("codec failed a window", error=str(exc))
                        _release_memory()
                        batch[0].sequence.fail(exc)
                        continue
                    _release_memory()
                    for window in batch:  # alone, so one bad window fails one job
                        out.update(self._decode_all([window]))
        return out

    def length(self, window: Window) -> int:
        """The padded length of the call that decodes `window`."""
        return next(n for n in self.lengths if n >= window.padded)

    def _decode_batch(self, batch: list[Window], length: int) -> dict[int, Any]:
        with self._on_stream():
            rows = []
            for window in batch:
                assert window.codes is not None
                codes = window.codes.on(self.stream)
                rows.append(torch.nn.functional.pad(codes, (0, length - codes.shape[-1])))
            audio = self.decode(torch.stack(rows)).cpu().numpy()
        return {
            id(w): audio[i, w.context * self.hop : (w.context + w.frames) * self.hop]
            for i, w in enumerate(batch)
        }


def _release_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
