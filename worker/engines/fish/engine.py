"""The `fish-speech` engine: Fish Speech (OpenAudio S1-mini), many jobs at once on one GPU.

Loaded once per worker process, before it consumes: the checkpoint is checked,
the language model and codec loaded, the batched decode step captured as CUDA
graphs (compiled first with SHOAL_FISH_COMPILE) and warmed up, so the worker is
ready only once the first job will be fast.

The worker calls `synthesize` from `slots` threads at once, one job each. A
job's text is cut at sentence boundaries into chunks that fit a slot's
context; its thread hands the chunks to the decode loop, which batches them
with every other job's (continuous batching: a chunk joins at the next step
and leaves when it ends), and streams the audio back, in order, as the codec
decodes it. Every chunk is generated with the job's seed and the same voice
(the cloned voice's reference, or else the first chunk's own audio as the
reference of the rest), so a long text sounds like one speaker, and chunks
that share a voice are decoded side by side (see _Job); chunks are joined
with a short pause.
"""

from __future__ import annotations

import queue
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch

from shoal.errors import Canceled, SynthesisError
from shoal.jobs import EngineParams
from shoal.logs import get_logger
from shoal.settings import Settings
from shoal.voices import Catalog
from worker.engines.base import Speech, SynthesisRequest
from worker.engines.fish.codec import Codec
from worker.engines.fish.loop import DecodeLoop
from worker.engines.fish.model import FishModel, FishOptions
from worker.engines.fish.prompt import PromptTooLong, Reference, Sampling, build_prompt, max_steps
from worker.engines.fish.runner import ModelRunner
from worker.engines.fish.sequence import Audio, Done, Event, Failed, Generated, Sequence, Stopped
from worker.engines.text_chunks import split_text

if TYPE_CHECKING:
    from shoal.voice_store import VoiceStore
    from worker.engines.fish.reference_codes import ReferenceCodes

log = get_logger(__name__)

DEFAULT_CHUNK_LENGTH = 200  # ServeTTSRequest's default
PAUSE_SECONDS = 0.2  # between chunks
WARMUP_TEXT = "Warming up the decoder."
POLL_SECONDS = 0.25  # how often a waiting job looks at its stop flag and the engine


@dataclass(frozen=True)
class BatchOptions:
    slots: int = 1  # jobs decoded at once
    context: int = 4096  # positions per slot: prompt and generated frames
    codec_window: int = 256  # frames per codec window
    codec_overlap: int = 32  # frames of left context per window after the first
    codec_batch_frames: int = 2048  # frames decoded per codec call, at most


def default_batch(device: torch.device) -> int:
    """The batch size for a GPU by its memory (docs/deploy.md): 1 on the CPU."""
    if device.type != "cuda":
        return 1
    gigabytes = torch.cuda.get_device_properties(device).total_memory / 1e9
    for memory, batch in ((100, 64), (70, 48), (40, 32), (20, 16)):
        if gigabytes >= memory:
            return batch
    return 8


def sampling(params: EngineParams) -> Sampling:
    """Fish Speech's defaults (ServeTTSRequest) for every parameter the job left out."""
    default = Sampling()
    return Sampling(
        temperature=default.temperature if params.temperature is None else params.temperature,
        top_p=default.top_p if params.top_p is None else params.top_p,
        repetition_penalty=(
            default.repetition_penalty
            if params.repetition_penalty is None
            else params.repetition_penalty
        ),
        max_new_tokens=(
            default.max_new_tokens if params.max_new_tokens is None else params.max_new_tokens
        ),
    )


class FishSpeechEngine:
    name = "fish-speech"

    def __init__(
        self,
        model: FishModel,
        options: BatchOptions | None = None,
        voices: VoiceStore | None = None,
        reference_cache_size: int = 64,
    ) -> None:
        options = options or BatchOptions()
        self.model = model
        self.slots = options.slots
        self.runner = ModelRunner(
            model, options.slots, options.context, graphs=True, compiled=model.compile
        )
        self.context = self.runner.context
        self.codec = Codec(
            model, options.codec_window, options.codec_overlap, options.codec_batch_frames
        )
        self.loop = DecodeLoop(self.runner, self.codec, options.slots)
        self.references: ReferenceCodes | None = None
        if voices is not None:
            from worker.engines.fish.reference_codes import ReferenceCodes

            self.references = ReferenceCodes(
                voices,
                self.codec.encode,
                model.sample_rate,
                model.codec_fingerprint,
                reference_cache_size,
            )
        self._catalog = Catalog(
            engine=self.name,
            sample_rate=model.sample_rate,
            default_voice=None,
            voices=[],
            languages=None,  # Fish reads the language from the text
            cloning=self.references is not None,
        )
        self._started = False
        self.startup: dict[str, float] = {}  # seconds of each start-up phase

    @classmethod
    def from_settings(cls, settings: Settings, voices: VoiceStore) -> FishSpeechEngine:
        """Load, compile and warm up; raises with what is wrong (the worker then exits 2)."""
        started = time.perf_counter()
        model = FishModel.load(
            FishOptions(
                checkpoint=settings.fish_checkpoint,
                codec_config=settings.fish_codec_config,
                device=settings.fish_device,
                precision=settings.fish_precision,
                compile=settings.fish_compile,
                compile_cache_dir=settings.fish_compile_cache_dir,
            )
        )
        slots = settings.fish_max_batch or default_batch(model.device)
        options = BatchOptions(slots=slots, context=settings.fish_context)
        loaded = time.perf_counter()
        engine = cls(model, options, voices, settings.fish_reference_cache_size)
        engine.startup["load"] = round(loaded - started, 2)
        engine.startup["caches"] = round(time.perf_counter() - loaded, 2)
        engine.warm_up()
        return engine

    def catalog(self) -> Catalog:
        return self._catalog

    def start(self) -> None:
        if not self._started:
            self._started = True
            self.codec.start()
            self.loop.start()

    def warm_up(self) -> float:
        """Capture and compile the steps, then run every stage once; returns the seconds."""
        started = mark = time.perf_counter()

        def phase(name: str) -> None:
            nonlocal mark
            now = time.perf_counter()
            self.startup[name] = round(now - mark, 2)
            mark = now

        if not self._started:  # graphs are recorded while the batch is empty
            self.runner.capture()
            phase("step_capture")
            self.startup.update({f"step_{k}": v for k, v in self.runner.phases.items()})
        self.codec.warm_up(self.runner.m.codebooks)
        phase("codec_warm_up")
        self.start()
        request = SynthesisRequest(WARMUP_TEXT, params=EngineParams(max_new_tokens=24, seed=0))
        self.synthesize(request)
        phase("warm_up_job")
        self.codec.encode(np.zeros(self.model.sample_rate, dtype=np.float32))
        phase("codec_encode")
        seconds = time.perf_counter() - started
        log.info(
            "fish speech warmed up",
            seconds=round(seconds, 2),
            phases=self.startup,
            slots=self.slots,
            context=self.context,
            kv_cache_gb=round(self.runner.cache_bytes / 1e9, 2),
            compiled=self.model.compile,
        )
        return seconds

    def synthesize(self, request: SynthesisRequest) -> Speech:
        self.start()
        params = request.params
        chunks = split_text(request.text, params.chunk_length or DEFAULT_CHUNK_LENGTH)
        if not chunks:
            raise SynthesisError("the text has nothing to speak", code="no_speech")
        seed = params.seed if params.seed is not None else secrets.randbits(32)
        job = _Job(self, request, chunks, sampling(params), seed)
        try:
            samples = job.run()
        except torch.cuda.OutOfMemoryError as exc:
            raise SynthesisError(
                f"the GPU ran out of memory ({len(request.text)} characters); "
                "retry, or split the text",
                code="gpu_out_of_memory",
            ) from exc
        except Stopped as exc:
            raise Canceled("the job stopped while it ran") from exc
        except PromptTooLong as exc:
            raise SynthesisError(
                f"{exc}: use a shorter reference recording and transcript, or a smaller "
                "chunk_length",
                code="prompt_too_long",
            ) from exc
        return Speech(samples=samples, sample_rate=self.model.sample_rate)

    def prompt(self, text: str, references: list[Reference]) -> torch.Tensor:
        return build_prompt(self.model, text, references, self.context)


class _Job:
    """One job's chunks through the engine, from the job's own thread.

    Every chunk after the first is conditioned on the same voice, and on nothing
    else of the chunks before it: the cloned voice's reference, or else the first
    chunk's own codes. So the later chunks do not wait for one another: with a
    cloned voice all chunks are submitted at once; without one, the first goes
    alone and the rest together once its codes are final. The batch decodes them
    side by side; their audio is put back in order here (a later chunk's audio is
    held until the chunks before it are done), so the result is what one chunk
    after the other would give, sooner.
    """

    def __init__(
        self,
        engine: FishSpeechEngine,
        request: SynthesisRequest,
        chunks: list[str],
        knobs: Sampling,
        seed: int,
    ) -> None:
        self.engine, self.request, self.chunks = engine, request, chunks
        self.knobs, self.seed = knobs, seed
        self.events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self.references: list[Reference] = []
        self.pieces: list[npt.NDArray[np.float32]] = []
        self.submitted: list[Sequence] = []
        self.current = 0  # the chunk whose audio is handed on now
        self.held: dict[int, list[npt.NDArray[np.float32]]] = {}  # later chunks' audio
        self.done: set[int] = set()
        if request.reference is not None:
            if engine.references is None:
                raise SynthesisError("this worker cannot load cloned voices", code="engine_error")
            codes = engine.references.get(request.reference)
            self.references = [(request.reference.transcript, codes)]

    def run(self) -> npt.NDArray[np.float32]:
        finished = False
        try:
            self._submit(range(len(self.chunks)) if self.references else [0])
            while not finished:
                event = self._next()
                if isinstance(event, Failed):
                    raise event.error
                index = event.sequence.index
                if isinstance(event, Generated):
                    if index == 0 and len(self.submitted) < len(self.chunks):
                        self._first_generated(event)
                elif isinstance(event, Audio):
                    if index == self.current:
                        self._emit(event.samples)
                    else:
                        self.held.setdefault(index, []).append(event.samples)
                elif isinstance(event, Done):
                    finished = self._done(index)
        finally:
            if not finished:  # stopped or failed: its slots and codec windows are dropped
                for sequence in self.submitted:
                    sequence.close()
        if not self.pieces:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(self.pieces)

    def _submit(self, indices: range | list[int]) -> None:
        for index in indices:
            prompt = self.engine.prompt(self.chunks[index], self.references)
            sequence = Sequence(
                prompt=prompt,
                sampling=self.knobs,
                seed=self.seed,
                max_steps=max_steps(self.knobs, prompt.shape[1], self.engine.context),
                events=self.events,
                stop_requested=self.request.should_stop,
                index=index,
            )
            self.submitted.append(sequence)
            self.engine.loop.submit(sequence)

    def _first_generated(self, event: Generated) -> None:
        """The first chunk's codes are final: they voice the rest, which start now."""
        if event.frames:
            assert event.sequence.codes is not None
            codes = event.sequence.codes.wait()[:, : event.frames].cpu()
            self.references = self._continuation(self.chunks[0], codes)
        self._submit(range(1, len(self.chunks)))

    def _done(self, index: int) -> bool:
        """Chunk `index` is decoded; hand on what waited behind it. True once all are."""
        self.done.add(index)
        while self.current in self.done:
            if self.current == len(self.chunks) - 1:
                return True
            pause = int(PAUSE_SECONDS * self.engine.model.sample_rate)
            self._emit(np.zeros(pause, dtype=np.float32))
            self.current += 1
            for samples in self.held.pop(self.current, []):
                self._emit(samples)
        return False

    def _continuation(self, text: str, codes: torch.Tensor) -> list[Reference]:
        """The first chunk as the voice of the rest, when every later prompt still fits."""
        first = [(text, codes)]
        try:
            for chunk in self.chunks[1:]:
                self.engine.prompt(chunk, first)
        except PromptTooLong:
            return []  # the same seed alone must do
        return first

    def _emit(self, samples: npt.NDArray[np.float32]) -> None:
        piece = np.clip(samples, -1.0, 1.0).astype(np.float32, copy=False)
        self.pieces.append(piece)
        if self.request.on_audio is not None and len(piece):
            self.request.on_audio(piece)

    def _next(self) -> Event:
        while True:
            try:
                return self.events.get(timeout=POLL_SECONDS)
            except queue.Empty:
                pass
            if self.request.should_stop():
                raise Stopped
            if not (self.engine.loop.alive and self.engine.codec.alive):
                raise SynthesisError("the Fish Speech engine stopped", code="engine_error")
