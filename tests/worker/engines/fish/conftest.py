"""The tiny checkpoint loaded on the CPU in fp32, where batched and alone agree exactly."""

from __future__ import annotations

import pytest

from tests.conftest import FishCheckpoint
from worker.engines.fish.model import FishModel, FishOptions


@pytest.fixture(scope="module")
def cpu_options(fish_checkpoint: FishCheckpoint) -> FishOptions:
    return FishOptions(
        fish_checkpoint.directory, str(fish_checkpoint.codec_config), "cpu", precision="fp32"
    )


@pytest.fixture(scope="module")
def model(cpu_options: FishOptions) -> FishModel:
    return FishModel.load(cpu_options)
