"""The codec in windows: how a chunk is cut, and that windows sound like the whole chunk."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worker.engines.fish.codec import FRAME_STEP, Codec, Window, lengths_for, plan
from worker.engines.fish.model import FishModel
from worker.engines.fish.prompt import Sampling
from worker.engines.fish.sequence import Sequence

FRAME = 2048


@pytest.fixture(scope="module")
def codec(model: FishModel) -> Codec:
    return Codec(model, window=48, overlap=8, batch_frames=256)


def test_a_chunk_is_cut_into_full_windows_with_left_context() -> None:
    assert plan(0, 40, window=48, overlap=8, final=False) == []  # not a full window yet
    assert plan(0, 100, window=48, overlap=8, final=False) == [(0, 0, 48), (40, 48, 88)]
    assert plan(88, 100, window=48, overlap=8, final=True) == [(80, 88, 100)]
    assert plan(0, 30, window=48, overlap=8, final=True) == [(0, 0, 30)]
    assert plan(30, 30, window=48, overlap=8, final=True) == []


def test_windows_are_padded_to_a_few_shapes() -> None:
    sequence = Sequence(torch.zeros((4, 3)), Sampling(), 0, 10, events=None)  # type: ignore[arg-type]
    assert Window(sequence, None, context=8, frames=5, last=True).padded == FRAME_STEP
    assert Window(sequence, None, context=8, frames=40, last=True).padded == 2 * FRAME_STEP


def test_calls_are_padded_to_half_a_window_or_a_whole_one() -> None:
    assert lengths_for(256) == [128, 256]
    assert lengths_for(48) == [32, 64]  # windows are rounded up to FRAME_STEP first
    assert lengths_for(FRAME_STEP) == [FRAME_STEP]


def test_windowed_audio_matches_the_whole_chunk(codec: Codec) -> None:
    codes = torch.randint(0, 64, (4, 120), generator=torch.Generator().manual_seed(0))
    whole = codec.decode_whole(codes)
    pieces = [
        codec.decode_whole(codes[:, begin:end])[(start - begin) * FRAME :]
        for begin, start, end in plan(0, 120, codec.window, codec.overlap, final=True)
    ]
    windowed = np.concatenate(pieces)
    assert len(windowed) == len(whole) == 120 * FRAME
    # The codec is causal: the first window is the chunk's start, to rounding.
    np.testing.assert_allclose(windowed[: 48 * FRAME], whole[: 48 * FRAME], atol=1e-5)
    # Later windows see 8 frames of context, not all of it: close, not equal.
    np.testing.assert_allclose(windowed, whole, atol=1e-3)
    assert float(np.std(whole)) > 0.01


def test_right_padding_does_not_change_the_frames_kept(codec: Codec) -> None:
    codes = torch.randint(0, 64, (4, 20), generator=torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(codes, (0, 12))
    np.testing.assert_allclose(
        codec.decode_whole(padded)[: 20 * FRAME], codec.decode_whole(codes), atol=1e-5
    )
