"""Encoding to each format, speed and sample rate, whole files and streams, decoded back."""

from __future__ import annotations

import numpy as np
import pytest

from shoal.jobs import AudioFormat, JobInput
from tests.support import decode, decode_any
from worker.audio import StreamEncoder, encode, output_rate, prepare
from worker.engines.base import Speech

STREAMABLE = [fmt for fmt in AudioFormat if fmt.streamable]


def tone(seconds: float, sample_rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def job(audio_format: AudioFormat, **fields: object) -> JobInput:
    return JobInput(text="x", format=audio_format, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("audio_format", list(AudioFormat))
@pytest.mark.parametrize("sample_rate", [22050, 44100])
def test_round_trip(audio_format: AudioFormat, sample_rate: int) -> None:
    seconds = 2.0
    data = encode(Speech(tone(seconds, sample_rate), sample_rate), audio_format)
    decoded = decode_any(data, audio_format.value, pcm_rate=sample_rate)
    assert decoded.sample_rate == (48000 if audio_format is AudioFormat.OPUS else sample_rate)
    assert abs(decoded.duration - seconds) < 0.1  # lossy codecs pad a frame or two
    assert 0.3 < decoded.rms < 0.4  # a 0.5 sine has RMS 0.354


@pytest.mark.parametrize("audio_format", ["wav", "flac", "mp3", "ogg", "opus"])
def test_libsndfile_reads_the_files_it_can(audio_format: str) -> None:
    data = encode(Speech(tone(1.0, 22050), 22050), AudioFormat(audio_format))
    assert abs(decode(data).duration - 1.0) < 0.1


def test_out_of_range_samples_are_clipped_not_wrapped() -> None:
    loud = np.full(22050, 1.7, dtype=np.float32)
    decoded = decode(encode(Speech(loud, 22050), AudioFormat.WAV))
    assert decoded.samples.min() > 0.99


def test_lossless_formats_keep_the_samples() -> None:
    ramp = np.linspace(-0.9, 0.9, 22050, dtype=np.float32)
    for audio_format in (AudioFormat.WAV, AudioFormat.FLAC):
        decoded = decode(encode(Speech(ramp, 22050), audio_format))
        assert np.max(np.abs(decoded.samples - ramp)) < 1e-4
    pcm = decode_any(encode(Speech(ramp, 22050), AudioFormat.PCM), "pcm", 22050)
    assert np.max(np.abs(pcm.samples - ramp)) < 1e-4


@pytest.mark.parametrize("speed", [0.25, 0.5, 1.5, 4.0])
def test_speed_stretches_time_and_keeps_the_pitch(speed: float) -> None:
    speech = prepare(Speech(tone(2.0, 22050), 22050), job(AudioFormat.WAV, speed=speed))
    assert speech.sample_rate == 22050
    assert speech.duration_seconds == pytest.approx(2.0 / speed, rel=0.03)
    spectrum = np.abs(np.fft.rfft(speech.samples))
    peak_hz = np.argmax(spectrum) * 22050 / len(speech.samples)
    assert peak_hz == pytest.approx(440, abs=15)


def test_sample_rate_resamples_and_opus_takes_a_rate_of_its_own() -> None:
    speech = Speech(tone(1.0, 22050), 22050)
    resampled = prepare(speech, job(AudioFormat.PCM, sample_rate=24000))
    assert resampled.sample_rate == 24000
    assert len(resampled.samples) == pytest.approx(24000, abs=64)
    assert prepare(speech, job(AudioFormat.WAV)) is speech  # nothing asked: untouched
    assert output_rate(22050, job(AudioFormat.OPUS)) == 48000
    assert output_rate(22050, job(AudioFormat.OPUS, sample_rate=24000)) == 24000


@pytest.mark.parametrize("audio_format", STREAMABLE)
@pytest.mark.parametrize("speed", [1.0, 1.5])
def test_a_stream_joined_is_one_file_of_all_the_audio(
    audio_format: AudioFormat, speed: float
) -> None:
    pieces = [tone(0.7, 22050), tone(0.05, 22050), tone(1.25, 22050)]  # 2 s, uneven
    encoder = StreamEncoder(22050, job(audio_format, speed=speed))
    parts = [encoder.feed(piece) for piece in pieces]
    parts.append(encoder.finish())
    assert parts[0], "the first piece is playable at once"
    decoded = decode_any(b"".join(parts), audio_format.value, pcm_rate=encoder.sample_rate)
    assert decoded.sample_rate == encoder.sample_rate
    assert decoded.duration == pytest.approx(2.0 / speed, abs=0.1)
    assert 0.3 < decoded.rms < 0.4


def test_a_streamed_wav_leaves_its_length_unknown() -> None:
    encoder = StreamEncoder(22050, job(AudioFormat.WAV))
    data = encoder.feed(tone(1.0, 22050)) + encoder.finish()
    assert data[:4] == b"RIFF" and data[4:8] == b"\xff\xff\xff\xff"
    assert abs(decode(data).duration - 1.0) < 0.01  # libsndfile reads to the end
