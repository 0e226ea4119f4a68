"""Reference codes: a bounded LRU of CPU tensors in front of codes persisted in S3."""

from __future__ import annotations

import anyio
import numpy as np
import pytest
import redis
import redis.asyncio as aredis
import torch

from shoal.settings import Settings
from shoal.storage import Storage
from shoal.voice_store import AsyncVoiceStore, VoiceStore, decode_recording
from shoal.voices import VoiceRecord
from tests.conftest import FishCheckpoint
from tests.support import recording
from worker.engines.fish.codec import Codec
from worker.engines.fish.model import FishModel, FishOptions
from worker.engines.fish.reference_codes import ReferenceCodes


@pytest.fixture(scope="module")
def model(fish_checkpoint: FishCheckpoint) -> FishModel:
    return FishModel.load(
        FishOptions(fish_checkpoint.directory, str(fish_checkpoint.codec_config), device="cpu")
    )


@pytest.fixture
def storage(settings: Settings) -> Storage:
    storage = Storage(settings)
    storage.ensure_bucket()
    return storage


@pytest.fixture
def voices(sync_redis: redis.Redis, storage: Storage) -> VoiceStore:
    return VoiceStore(sync_redis, storage)


def create(settings: Settings, storage: Storage, seconds: float, rate: int) -> VoiceRecord:
    async def go() -> VoiceRecord:
        client = aredis.Redis.from_url(settings.redis_url, decode_responses=True)
        try:
            data = recording(seconds, sample_rate=rate)
            return await AsyncVoiceStore(client, storage).create(
                data, decode_recording(data), "words", None, owner="tests"
            )
        finally:
            await client.aclose()

    return anyio.run(go)


def test_codes_are_bounded_in_memory_and_reloaded_from_storage(
    model: FishModel, voices: VoiceStore, storage: Storage, settings: Settings
) -> None:
    encoded: list[int] = []

    def encode(samples: np.ndarray) -> torch.Tensor:
        encoded.append(len(samples))
        return Codec(model, window=256, overlap=32, batch_frames=2048).encode(samples)

    cache = ReferenceCodes(voices, encode, model.sample_rate, model.codec_fingerprint, capacity=2)
    records = [create(settings, storage, 2.0 + n, 16000) for n in range(3)]
    first = [cache.get(record) for record in records]
    assert len(cache) == 2
    # Resampled to the codec's rate before encoding: 2, 3 and 4 s at 44.1 kHz.
    assert encoded == [88200, 132300, 176400]
    for codes in first:
        assert codes.device.type == "cpu" and codes.dtype == torch.int32
        assert codes.shape[0] == model.model.config.num_codebooks
    assert [c.shape[1] for c in first] == [44, 65, 87]  # ceil(samples / 2048): 21.5 a second
    again = cache.get(records[0])  # evicted: back from storage, not encoded again
    assert torch.equal(again, first[0])
    assert len(encoded) == 3
    fresh = ReferenceCodes(voices, encode, model.sample_rate, model.codec_fingerprint, 2)
    assert torch.equal(fresh.get(records[2]), first[2])  # another worker: storage too
    assert len(encoded) == 3
    other_codec = ReferenceCodes(voices, encode, model.sample_rate, "another-codec", 2)
    other_codec.get(records[1])  # codes of another codec are never reused
    assert len(encoded) == 4
