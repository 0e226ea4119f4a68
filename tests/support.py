"""Helpers the tests share: real processes, polling and audio checks."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import redis
import soundfile as sf

from shoal import keys
from shoal.local.ports import free_port
from shoal.local.processes import ProcessSpec, spawn, stop
from shoal.local.s3_server import SOCKET_FOLDER
from shoal.local.stack import gateway_spec, worker_spec

TERMINAL = {"succeeded", "failed", "canceled"}


@dataclass
class Env:
    """The environment that points shoal's processes at the test's Redis and S3."""

    values: dict[str, str] = field(default_factory=dict)

    def with_(self, **overrides: str) -> Env:
        return Env({**self.values, **overrides})

    def full(self) -> dict[str, str]:
        return {**os.environ, **self.values}


@contextmanager
def running(spec: ProcessSpec) -> Iterator[Any]:
    process = spawn(spec)
    try:
        yield process
    finally:
        stop(process, timeout=15)


def gateway_on(
    port: int,
    env: Env,
    probe: str = "/readyz",
    log_file: Path | None = None,
    processes: int = 1,
) -> subprocess.Popen[bytes]:
    """A uvicorn gateway process on `port`, once it answers `probe`.

    `log_file` catches its output; `processes` > 1 runs that many uvicorn workers.
    """
    spec = replace(gateway_spec("127.0.0.1", port, env.full()), log_file=log_file)
    if processes > 1:
        spec.argv = [*spec.argv, "--workers", str(processes)]
    process = spawn(spec)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise AssertionError("the gateway exited during start-up")
        try:
            if httpx.get(url + probe, timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop(process, timeout=10)
            raise AssertionError(f"the gateway never answered {probe}")
        time.sleep(0.1)


@contextmanager
def gateway(
    env: Env, ready: bool = True, log_file: Path | None = None, processes: int = 1
) -> Iterator[str]:
    """A uvicorn gateway; waits for /readyz, or only for /healthz when `ready` is False."""
    port = free_port()
    process = gateway_on(
        port, env, "/readyz" if ready else "/healthz", log_file=log_file, processes=processes
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process, timeout=15)


def start_worker_spec(env: Env, name: str, queues: str = keys.TTS_QUEUE) -> ProcessSpec:
    return worker_spec(name, queues, env.full())


def wait_for_worker(redis_client: Any, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while redis_client.zscore(keys.WORKERS, name) is None:
        assert time.monotonic() < deadline, f"worker {name} never registered"
        time.sleep(0.05)


def wait_for_job(
    client: httpx.Client, job_id: str, statuses: set[str] = TERMINAL, timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, f"job stayed {job['status']}: {job}"
        time.sleep(0.05)


@dataclass
class Decoded:
    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def rms(self) -> float:
        return float(np.sqrt(np.mean(np.square(self.samples)))) if len(self.samples) else 0.0


def decode(data: bytes) -> Decoded:
    samples, sample_rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    return Decoded(samples, sample_rate)


def decode_any(data: bytes, audio_format: str, pcm_rate: int = 0) -> Decoded:
    """Any format shoal makes: raw PCM (at `pcm_rate`) by hand, the rest through FFmpeg (PyAV),
    which also reads what libsndfile cannot (AAC, and FLAC streamed with its length unknown).
    """
    if audio_format == "pcm":
        assert len(data) % 2 == 0, "16-bit PCM has an even number of bytes"
        return Decoded(np.frombuffer(data, "<i2").astype(np.float32) / 32768.0, pcm_rate)
    import av

    with av.open(io.BytesIO(data), "r") as container:
        frames = list(container.decode(audio=0))
    assert frames, f"no audio in {len(data)} bytes of {audio_format}"
    samples = np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames])
    if samples.dtype.kind == "i":
        samples = samples / float(np.iinfo(samples.dtype).max)
    return Decoded(samples.astype(np.float32), frames[0].sample_rate)


def assert_speech(audio: Decoded, sample_rate: int, min_seconds: float, max_seconds: float) -> None:
    assert audio.sample_rate == sample_rate
    assert min_seconds <= audio.duration <= max_seconds, audio.duration
    assert audio.rms > 0.01, "the audio is silent"


def recording(
    seconds: float,
    sample_rate: int = 22050,
    channels: int = 1,
    audio_format: str = "WAV",
    loudness: float = 0.3,
) -> bytes:
    """A voice-like test recording: a gliding harmonic tone with syllable-rate loudness."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    pitch = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 6))
    syllables = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    mono = loudness * voice * syllables / 2.3
    samples = np.repeat(mono[:, None], channels, axis=1).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, format=audio_format)
    return buffer.getvalue()


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The real `shoal` command in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "shoal.cli", *args],
        env={**os.environ, **env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def storage_settings(env: Env) -> Any:
    """Settings for the S3 bucket and Redis database an Env points at."""
    from shoal.settings import Settings

    fields: dict[str, Any] = {name[6:].lower(): value for name, value in env.values.items()}
    return Settings(**fields)


def weed_sockets_in_tmp(ports: list[int]) -> list[Path]:
    """What SeaweedFS left in /tmp for these ports (it names its sockets after them)."""
    return [path for port in ports for path in SOCKET_FOLDER.glob(f"seaweedfs-*-{port}.sock")]


def stream_fields(client: redis.Redis, key: str) -> list[dict[str, str]]:
    """The fields of each entry of a Redis stream, through a client that decodes replies."""
    entries = cast(list[tuple[str, dict[str, str]]], client.xrange(key))
    return [fields for _, fields in entries]
