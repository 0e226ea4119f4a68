"""Encoding speech into the formats clients ask for, with libsndfile."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from shoal.jobs import AudioFormat
from worker.engines.base import Speech

# (libsndfile container, subtype) per format.
_FORMATS = {
    AudioFormat.WAV: ("WAV", "PCM_16"),
    AudioFormat.FLAC: ("FLAC", "PCM_16"),
    AudioFormat.OGG: ("OGG", "VORBIS"),
    AudioFormat.MP3: ("MP3", "MPEG_LAYER_III"),
}


def encode(speech: Speech, audio_format: AudioFormat) -> bytes:
    container, subtype = _FORMATS[audio_format]
    buffer = io.BytesIO()
    samples = np.clip(speech.samples, -1.0, 1.0)
    sf.write(buffer, samples, speech.sample_rate, format=container, subtype=subtype)
    return buffer.getvalue()
