"""Codec codes of cloned voices: encoded once, kept in a bounded LRU, shared through storage.

Upstream re-encodes a reference per request or keeps GPU tensors in unbounded
dicts. Here a worker looks in memory (CPU tensors, at most `capacity` voices),
then in storage (codes another worker persisted, keyed by the codec's
fingerprint), and only then encodes the recording and persists the codes.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import soxr
import torch

from shoal.logs import get_logger
from shoal.voice_store import VoiceStore, decode_recording
from shoal.voices import VoiceRecord
from worker import metrics

log = get_logger(__name__)

Encoder = Callable[[npt.NDArray[np.float32]], torch.Tensor]


class ReferenceCodes:
    def __init__(
        self,
        voices: VoiceStore,
        encode: Encoder,
        sample_rate: int,
        fingerprint: str,
        capacity: int,
    ) -> None:
        self.voices = voices
        self.encode = encode
        self.sample_rate = sample_rate
        self.fingerprint = fingerprint
        self.capacity = capacity
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._cache)

    def get(self, voice: VoiceRecord) -> torch.Tensor:
        """Codes (codebooks x frames, int32, CPU) of the voice's recording."""
        with self._lock:
            codes = self._cache.get(voice.id)
            if codes is not None:
                self._cache.move_to_end(voice.id)
                metrics.REFERENCE_CODES.labels("memory").inc()
                return codes
        codes = self._load(voice)
        with self._lock:
            self._cache[voice.id] = codes
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return codes

    def _load(self, voice: VoiceRecord) -> torch.Tensor:
        stored = self.voices.load_codes(voice, self.fingerprint)
        if stored is not None:
            metrics.REFERENCE_CODES.labels("storage").inc()
            log.info("reference codes loaded from storage", voice=voice.id)
            return torch.from_numpy(np.load(io.BytesIO(stored)).astype(np.int32))
        recording = decode_recording(self.voices.recording(voice))
        samples = recording.mono()
        if recording.sample_rate != self.sample_rate:
            samples = soxr.resample(samples, recording.sample_rate, self.sample_rate)
        codes = self.encode(np.ascontiguousarray(samples, dtype=np.float32))
        buffer = io.BytesIO()
        np.save(buffer, codes.numpy().astype(np.int16))  # codebook entries < 2**15
        self.voices.save_codes(voice, self.fingerprint, buffer.getvalue())
        metrics.REFERENCE_CODES.labels("encoded").inc()
        log.info("reference encoded and persisted", voice=voice.id, frames=codes.shape[1])
        return codes
