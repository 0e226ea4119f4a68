"""Encoding to each format, decoded back with libsndfile."""

from __future__ import annotations

import numpy as np
import pytest

from shoal.jobs import AudioFormat
from tests.support import decode
from worker.audio import encode
from worker.engines.base import Speech


@pytest.mark.parametrize("audio_format", list(AudioFormat))
@pytest.mark.parametrize("sample_rate", [22050, 44100])
def test_round_trip(audio_format: AudioFormat, sample_rate: int) -> None:
    seconds = 2.0
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    decoded = decode(encode(Speech(tone, sample_rate), audio_format))
    assert decoded.sample_rate == sample_rate
    assert abs(decoded.duration - seconds) < 0.06  # lossy codecs pad a frame
    assert 0.3 < decoded.rms < 0.4  # a 0.5 sine has RMS 0.354


def test_out_of_range_samples_are_clipped_not_wrapped() -> None:
    loud = np.full(22050, 1.7, dtype=np.float32)
    decoded = decode(encode(Speech(loud, 22050), AudioFormat.WAV))
    assert decoded.samples.min() > 0.99


def test_lossless_formats_keep_the_samples() -> None:
    ramp = np.linspace(-0.9, 0.9, 22050, dtype=np.float32)
    for audio_format in (AudioFormat.WAV, AudioFormat.FLAC):
        decoded = decode(encode(Speech(ramp, 22050), audio_format))
        assert np.max(np.abs(decoded.samples - ramp)) < 1e-4
