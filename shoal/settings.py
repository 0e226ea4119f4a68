"""Every setting shoal reads: environment variables with the prefix ``SHOAL_``.

One class for the gateway, the workers and ``shoal up`` alike, so an operator
sets a value once and every process agrees on it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shoal.webhooks import secret_key

CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOAL_", extra="ignore")

    # The local stack (`shoal up`).
    host: str = Field("127.0.0.1", description="Address the gateway binds to.")
    port: int = Field(8000, ge=0, le=65535, description="Gateway port of `shoal up`.")
    workers: int = Field(1, ge=0, le=64, description="Synthesis worker processes `shoal up` runs.")
    data_dir: Path = Field(Path(".shoal"), description="Where `shoal up` keeps Redis and S3 data.")
    autoscale: bool = Field(
        False, description="`shoal up` scales its synthesis workers with the local KEDA stand-in."
    )

    # Engines.
    engine: Literal["espeak", "fish-speech", "tone"] = Field(
        "espeak", description="`tone` is a fixed clip for benchmarks and smoke tests."
    )
    fish_checkpoint: Path | None = Field(None, description="S1-mini checkpoint directory.")
    fish_codec_config: str = Field(
        "modded_dac_vq",
        description="Codec config: a name in the package's configs, or a YAML path.",
    )
    fish_device: Literal["auto", "cuda", "cpu"] = Field(
        "auto", description="auto: CUDA when PyTorch sees a GPU, else the CPU."
    )
    fish_precision: Literal["bf16", "fp16", "fp32"] = Field(
        "bf16", description="Weights and activations of the language model."
    )
    fish_compile: bool = Field(
        True,
        description="torch.compile the batched decode step and the codec (CUDA only), "
        "warmed up before consuming.",
    )
    fish_compile_cache_dir: Path | None = Field(
        None, description="Inductor/Triton cache on a volume shared by workers (warm starts)."
    )
    fish_max_batch: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Jobs one Fish Speech worker decodes at once (continuous batching); "
        "unset: chosen by GPU memory, 1 on the CPU. KEDA's per-worker target follows it.",
    )
    fish_context: int = Field(
        4096,
        ge=512,
        le=8192,
        description="Positions per batch slot (a chunk's prompt and its frames), "
        "at most the model's max_seq_len; sizes the KV cache.",
    )
    fish_reference_cache_size: int = Field(
        64, ge=1, description="Cloned voices whose codec codes a worker keeps in memory (LRU)."
    )
    emulate_rtf: float = Field(
        0.0, ge=0.0, description="Emulate GPU time: a job takes audio seconds x this factor."
    )

    # Redis: job records and the Celery broker.
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_timeout_seconds: float = Field(
        5.0, gt=0, le=60, description="Longest the gateway waits for a Redis reply (then 503)."
    )

    # S3-compatible storage.
    s3_endpoint: str | None = Field(None, description="Endpoint workers and the gateway use.")
    s3_public_endpoint: str | None = Field(
        None, description="Endpoint presigned URLs name; defaults to s3_endpoint."
    )
    s3_bucket: str = "shoal-audio"
    s3_region: str = "us-east-1"
    s3_access_key: str | None = None
    s3_secret_key: str | None = None

    # The HTTP contract.
    api_keys: CommaList = Field(default_factory=list)
    max_text_chars: int = Field(5000, ge=1)
    max_body_bytes: int = Field(1 << 20, ge=1024, description="Largest JSON request body.")
    default_format: Literal["wav", "flac", "mp3", "ogg", "opus", "aac", "pcm"] = "wav"
    max_wait_seconds: float = Field(60.0, ge=0, description="Cap of `Prefer: wait=N`.")
    sync_wait_seconds: float = Field(
        120.0,
        gt=0,
        description="How long POST /v1/tts and /v1/audio/speech wait for audio (or, streaming, "
        "for its next piece) before answering 504 with the job id to poll.",
    )
    audio_stream_ttl_seconds: int = Field(
        600, ge=10, description="A streamed job's pieces stay in Redis this long after the last."
    )
    openai_voices: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="OpenAI voice name -> shoal voice id, e.g. 'alloy=en-us,nova=voice_...'; "
        "OpenAI names not listed speak with the engine's default voice.",
    )
    max_waiters: int = Field(
        100, ge=0, description="Requests one gateway holds in `Prefer: wait`; past it, 202 at once."
    )
    rate_limit_per_minute: int = Field(
        0, ge=0, description="Submits per API key per minute (token bucket); 0 = no limit."
    )
    metrics_token: str | None = Field(
        None, description="When set, GET /metrics needs `Authorization: Bearer <token>`."
    )
    voice_min_seconds: float = Field(2.0, gt=0, description="Shortest reference recording.")
    voice_max_seconds: float = Field(30.0, gt=0, description="Longest reference recording.")
    voice_max_transcript_chars: int = Field(1000, ge=1, description="Longest transcript.")

    # Admission control: refused with 503 / 429 before anything is written.
    max_queued: int = Field(
        100_000, ge=0, description="Waiting jobs past which submits get 503 (0 = no cap)."
    )
    max_queued_per_key: int = Field(
        0, ge=0, description="Waiting jobs of one API key past which it gets 429 (0 = no cap)."
    )

    # Job lifecycle.
    retention_seconds: int = Field(86_400, ge=60, description="How long jobs and audio live.")
    audio_url_ttl_seconds: int = Field(3600, ge=60, description="Lifetime of a presigned URL.")
    job_timeout_seconds: float = Field(600.0, gt=0, description="Longest a job may run.")
    lease_seconds: float = Field(
        15.0, gt=0, description="A running job whose worker is silent this long is requeued."
    )
    max_attempts: int = Field(3, ge=1, description="Runs of one job before it fails.")
    storage_retry_seconds: float = Field(
        30.0, ge=0, description="How long a run retries an upload (backoff) before requeueing."
    )
    requeue_delay_seconds: float = Field(
        15.0,
        ge=0,
        description="Wait before a job requeued by a transient failure runs again; doubles "
        "with each attempt.",
    )
    maintenance_interval_seconds: float = Field(
        5.0, gt=0, description="How often the gateway requeues lost jobs and expires audio."
    )

    # Webhooks.
    webhook_secret: CommaList = Field(
        default_factory=list,
        description="whsec_ secrets; every one signs (rotation). `shoal up` generates one.",
    )
    webhook_allow_hosts: CommaList = Field(
        default_factory=list, description="Hosts or CIDRs exempt from the SSRF guard."
    )
    webhook_ports: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [80, 443],
        description="Ports webhook URLs may name (hosts in webhook_allow_hosts: any).",
    )
    webhook_timeout_seconds: float = Field(15.0, gt=0, le=60, description="Per attempt.")
    webhook_retry_schedule: Annotated[list[float], NoDecode] = Field(
        # Standard Webhooks' schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18e3, 36e3, 50.4e3, 72e3, 86.4e3],
        description="Seconds before each retry (with +-20 % jitter).",
    )
    webhook_concurrency: int = Field(16, ge=1, le=512, description="Threads per webhook worker.")

    # Observability.
    log_level: str = "INFO"
    log_format: Literal["console", "json"] = "console"
    worker_metrics_port: int = Field(0, ge=0, le=65535, description="0 = no worker metrics server.")
    worker_alive_file: Path = Field(
        Path("/tmp/shoal-worker-alive"),
        description="Touched by a healthy worker's heartbeat; `python -m worker.probe` reads it.",
    )

    @field_validator("api_keys", "webhook_secret", "webhook_allow_hosts", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("openai_voices", mode="before")
    @classmethod
    def _split_pairs(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        pairs = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            name, sep, voice = part.partition("=")
            if not sep or not name.strip() or not voice.strip():
                raise ValueError(f"{part!r} is not name=voice")
            pairs[name.strip().lower()] = voice.strip()
        return pairs

    @field_validator("webhook_retry_schedule", "webhook_ports", mode="before")
    @classmethod
    def _split_numbers(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secrets_are_whsec(cls, secrets: list[str]) -> list[str]:
        for secret in secrets:
            secret_key(secret)  # ValueError names what is wrong
        return secrets

    @property
    def visibility_timeout(self) -> int:
        """Broker redelivery timeout: longer than the longest job, or jobs run twice.

        Lost workers are detected by job leases much sooner; this is only the
        broker's own last resort for a message nobody acknowledged.
        """
        return int(self.job_timeout_seconds * 2 + 300)


@lru_cache
def get_settings() -> Settings:
    return Settings()
