"""Speech into the files clients ask for: speed, sample rate, then a format.

`prepare` applies a job's speed (time-stretched, pitch kept) and sample rate;
`encode` makes the whole file; `StreamEncoder` makes the same format piece by
piece while the engine is still speaking (streamed jobs). libsndfile (through
soundfile) writes WAV, FLAC, MP3, Vorbis and raw PCM files; FFmpeg's libraries
(through PyAV) do what it cannot: Opus, AAC, time-stretching, resampling, and
every compressed format as a stream.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import numpy.typing as npt
import soundfile as sf

from shoal.jobs import AudioFormat, JobInput
from worker.av_codecs import AvEncoder, Shaper
from worker.engines.base import Speech

Samples = npt.NDArray[np.float32]

# (libsndfile container, subtype) for the files libsndfile writes.
_SNDFILE = {
    AudioFormat.WAV: ("WAV", "PCM_16"),
    AudioFormat.FLAC: ("FLAC", "PCM_16"),
    AudioFormat.OGG: ("OGG", "VORBIS"),
    AudioFormat.MP3: ("MP3", "MPEG_LAYER_III"),
    AudioFormat.PCM: ("RAW", "PCM_16"),
}
# (FFmpeg muxer, encoder) for the rest, and for every compressed stream.
_AV = {
    AudioFormat.OPUS: ("ogg", "libopus"),
    AudioFormat.AAC: ("adts", "aac"),
    AudioFormat.MP3: ("mp3", "libmp3lame"),
    AudioFormat.FLAC: ("flac", "flac"),
}
_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def _format_rate(audio_format: AudioFormat, rate: int) -> int:
    """The rate a file of the format can have that is closest to `rate` (Opus: 8-48 kHz)."""
    if audio_format is AudioFormat.OPUS and rate not in _OPUS_RATES:
        return 48000
    return rate


def output_rate(engine_rate: int, job_input: JobInput) -> int:
    """The rate of the job's file: the one asked for, else the engine's (Opus: one it takes)."""
    return _format_rate(job_input.format, job_input.sample_rate or engine_rate)


def prepare(speech: Speech, job_input: JobInput) -> Speech:
    """The speech at the job's speed and output rate (unchanged when it asks for neither)."""
    rate = output_rate(speech.sample_rate, job_input)
    if job_input.speed == 1.0 and rate == speech.sample_rate:
        return speech
    shaper = Shaper(speech.sample_rate, job_input.speed, rate)
    samples = np.concatenate([shaper.feed(speech.samples), shaper.finish()])
    return Speech(samples=samples, sample_rate=rate)


def _pcm16(samples: Samples) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def encode(speech: Speech, audio_format: AudioFormat) -> bytes:
    """The whole file, at the speech's own rate (`prepare` sets it; Opus: 48 kHz if it must)."""
    samples = np.clip(speech.samples, -1.0, 1.0)
    if audio_format in (AudioFormat.OPUS, AudioFormat.AAC):
        muxer, codec = _AV[audio_format]
        rate = _format_rate(audio_format, speech.sample_rate)
        encoder = AvEncoder(muxer, codec, speech.sample_rate, rate)
        return encoder.feed(samples) + encoder.finish()
    container, subtype = _SNDFILE[audio_format]
    buffer = io.BytesIO()
    sf.write(buffer, samples, speech.sample_rate, format=container, subtype=subtype)
    return buffer.getvalue()


def _streaming_wav_header(sample_rate: int) -> bytes:
    """A WAV header whose sizes say "unknown" (0xFFFFFFFF), as streaming servers send."""
    unknown = 0xFFFFFFFF
    fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
    return (
        b"RIFF" + struct.pack("<I", unknown) + b"WAVE"
        b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", unknown)
    )


class StreamEncoder:
    """The job's file, piece by piece: speed and rate applied, then the format encoded.

    `feed` takes each consecutive piece of the engine's audio and returns the
    bytes ready so far; `finish` returns the rest. Joined, they are one file a
    player reads from its first byte (WAV's header leaves the length unknown).
    """

    def __init__(self, engine_rate: int, job_input: JobInput) -> None:
        audio_format = job_input.format
        if not audio_format.streamable:
            raise ValueError(f"{audio_format} cannot be streamed")
        self.sample_rate = output_rate(engine_rate, job_input)
        self._shaper = (
            None
            if job_input.speed == 1.0 and self.sample_rate == engine_rate
            else Shaper(engine_rate, job_input.speed, self.sample_rate)
        )
        self._encoder: AvEncoder | None = None
        self._header = b""
        if audio_format in _AV:
            muxer, codec = _AV[audio_format]
            self._encoder = AvEncoder(muxer, codec, self.sample_rate)
        elif audio_format is AudioFormat.WAV:
            self._header = _streaming_wav_header(self.sample_rate)

    def _encode(self, samples: Samples) -> bytes:
        data = self._encoder.feed(samples) if self._encoder else _pcm16(samples)
        header, self._header = self._header, b""
        return header + data

    def feed(self, samples: Samples) -> bytes:
        shaped = self._shaper.feed(samples) if self._shaper else samples
        return self._encode(shaped)

    def finish(self) -> bytes:
        tail = self._encode(self._shaper.finish()) if self._shaper else self._encode(_EMPTY)
        return tail + (self._encoder.finish() if self._encoder else b"")


_EMPTY: Samples = np.zeros(0, dtype=np.float32)
