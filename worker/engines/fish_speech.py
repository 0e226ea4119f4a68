"""The `fish-speech` engine: Fish Speech (OpenAudio S1-mini) on a GPU, or a CPU.

Loaded once per worker process, before it consumes: the checkpoint is checked,
the language model and codec loaded, the decode step compiled (CUDA) and
warmed up, so the worker is ready only once the first job will be fast.

A job's text is cut at sentence boundaries into chunks that fit the model's
prompt; every chunk is generated with the same seed and the same voice (the
cloned voice's reference, or else the first chunk's own audio as the
reference of the rest), so a long text sounds like one speaker. The chunks'
audio is joined with a short pause.
"""

from __future__ import annotations

import gc
import secrets
import time
from typing import TYPE_CHECKING

import numpy as np
import torch

from shoal.errors import Canceled, SynthesisError
from shoal.jobs import EngineParams
from shoal.logs import get_logger
from shoal.settings import Settings
from shoal.voices import Catalog
from worker.engines.base import Speech, SynthesisRequest, stream_whole
from worker.engines.fish_generate import (
    PromptTooLong,
    Reference,
    Sampling,
    Stopped,
    build_prompt,
    generate,
)
from worker.engines.fish_model import FishModel, FishOptions
from worker.engines.text_chunks import split_text

if TYPE_CHECKING:
    from shoal.voice_store import VoiceStore
    from worker.engines.reference_codes import ReferenceCodes

log = get_logger(__name__)

DEFAULT_CHUNK_LENGTH = 200  # ServeTTSRequest's default
PAUSE_SECONDS = 0.2  # between chunks
WARMUP_TEXT = "Warming up the decoder."
WARMUP_ROUNDS = 3  # CUDA graphs are recorded on the first calls after compilation


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
    slots = 1  # one decode loop; continuous batching raises this

    def __init__(self, model: FishModel, references: ReferenceCodes | None = None) -> None:
        self.model = model
        self.references = references
        self._catalog = Catalog(
            engine=self.name,
            sample_rate=model.sample_rate,
            default_voice=None,
            voices=[],
            languages=None,  # Fish reads the language from the text
            cloning=references is not None,
        )

    @classmethod
    def from_settings(cls, settings: Settings, voices: VoiceStore) -> FishSpeechEngine:
        """Load, compile and warm up; raises with what is wrong (the worker then exits 2)."""
        from worker.engines.reference_codes import ReferenceCodes

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
        references = ReferenceCodes(
            voices,
            model.encode_reference,
            model.sample_rate,
            model.codec_fingerprint,
            settings.fish_reference_cache_size,
        )
        engine = cls(model, references)
        engine.warm_up()
        return engine

    def catalog(self) -> Catalog:
        return self._catalog

    def warm_up(self) -> float:
        """Compile (when enabled) and run every stage once; returns the seconds it took."""
        started = time.perf_counter()
        request = SynthesisRequest(WARMUP_TEXT, params=EngineParams(max_new_tokens=24, seed=0))
        for _ in range(WARMUP_ROUNDS if self.model.compiled else 1):
            self.synthesize(request)
        silence = np.zeros(self.model.sample_rate, dtype=np.float32)
        self.model.encode_reference(silence)
        seconds = time.perf_counter() - started
        log.info("fish speech warmed up", seconds=round(seconds, 2), compiled=self.model.compiled)
        return seconds

    def synthesize(self, request: SynthesisRequest) -> Speech:
        params = request.params
        chunks = split_text(request.text, params.chunk_length or DEFAULT_CHUNK_LENGTH)
        if not chunks:
            raise SynthesisError("the text has nothing to speak", code="no_speech")
        seed = params.seed if params.seed is not None else secrets.randbits(32)
        try:
            pieces = self._generate(request, chunks, sampling(params), seed)
        except torch.cuda.OutOfMemoryError as exc:
            gc.collect()
            torch.cuda.empty_cache()  # the next job starts from what the model needs
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
        pause = np.zeros(int(PAUSE_SECONDS * self.model.sample_rate), dtype=np.float32)
        joined = [part for piece in pieces for part in (pause, piece)][1:]
        samples = np.clip(np.concatenate(joined), -1.0, 1.0).astype(np.float32)
        return stream_whole(request, Speech(samples=samples, sample_rate=self.model.sample_rate))

    def _generate(
        self, request: SynthesisRequest, chunks: list[str], knobs: Sampling, seed: int
    ) -> list[np.ndarray]:
        references: list[Reference] = []
        if request.reference is not None:
            if self.references is None:
                raise SynthesisError("this worker cannot load cloned voices", code="engine_error")
            references = [(request.reference.transcript, self.references.get(request.reference))]
        pieces = []
        for index, chunk in enumerate(chunks):
            if request.should_stop():
                raise Stopped
            codes = generate(
                self.model,
                build_prompt(self.model, chunk, references),
                knobs,
                seed,
                request.should_stop,
            )
            if not codes.shape[1]:  # end of speech at once
                pieces.append(np.zeros(0, dtype=np.float32))
                continue
            pieces.append(self.model.decode(codes))
            if index == 0 and not references and len(chunks) > 1:
                references = self._continuation(chunk, codes, chunks[1:])
        return pieces

    def _continuation(self, text: str, codes: torch.Tensor, rest: list[str]) -> list[Reference]:
        """The first chunk as the voice of the rest, when every later prompt still fits."""
        first = [(text, codes)]
        try:
            for chunk in rest:
                build_prompt(self.model, chunk, first)
        except PromptTooLong:
            return []  # the same seed alone must do
        return first
