"""The fish-speech engine on a tiny random checkpoint in the real format, on the CPU.

The checkpoint's end of speech is unreachable, so a chunk makes exactly
`max_new_tokens` frames of 2048 samples: lengths are exact, not guessed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from shoal.errors import Canceled, SynthesisError
from shoal.jobs import EngineParams
from tests.conftest import FishCheckpoint
from tests.support import Env
from worker.engines.base import SynthesisRequest
from worker.engines.fish import FishSpeechEngine
from worker.engines.fish.engine import PAUSE_SECONDS
from worker.engines.fish.model import CheckpointError, FishModel, FishOptions
from worker.engines.fish.prompt import PromptTooLong, build_prompt
from worker.engines.text_chunks import split_text

RATE = 44100
FRAME = 2048
LONG_TEXT = " ".join(
    f"This is sentence {n} of a long text that must be read in several chunks." for n in range(9)
)


def options(checkpoint: FishCheckpoint, directory: Path | None = None) -> FishOptions:
    return FishOptions(
        checkpoint=directory or checkpoint.directory,
        codec_config=str(checkpoint.codec_config),
        device="cpu",
    )


@pytest.fixture(scope="module")
def engine(fish_checkpoint: FishCheckpoint) -> FishSpeechEngine:
    engine = FishSpeechEngine(FishModel.load(options(fish_checkpoint)))
    engine.warm_up()
    return engine


def say(engine: FishSpeechEngine, text: str, **params: int) -> np.ndarray:
    request = SynthesisRequest(text, params=EngineParams.model_validate(params))
    speech = engine.synthesize(request)
    assert speech.sample_rate == RATE
    assert speech.samples.dtype == np.float32
    return speech.samples


def test_catalog_reads_the_language_from_the_text(engine: FishSpeechEngine) -> None:
    catalog = engine.catalog()
    assert catalog.engine == "fish-speech"
    assert catalog.sample_rate == RATE
    assert catalog.languages is None and catalog.voices == []
    assert catalog.resolve(None, "ja") is None  # any language: Fish reads it from the text
    assert catalog.cloning is False  # no voice store attached in this test


def test_speech_is_44k_and_as_long_as_the_frames_asked_for(engine: FishSpeechEngine) -> None:
    samples = say(engine, "Hello from Fish Speech.", max_new_tokens=24, seed=1)
    assert len(samples) == 24 * FRAME
    assert float(np.std(samples)) > 0.01  # not silent, not a constant
    assert np.abs(samples).max() <= 1.0


def test_same_seed_same_audio(engine: FishSpeechEngine) -> None:
    first = say(engine, "Determinism matters.", max_new_tokens=16, seed=42)
    again = say(engine, "Determinism matters.", max_new_tokens=16, seed=42)
    other = say(engine, "Determinism matters.", max_new_tokens=16, seed=43)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_long_text_is_generated_in_chunks_and_joined_in_order(engine: FishSpeechEngine) -> None:
    chunks = split_text(LONG_TEXT, 150)
    assert len(chunks) == 5
    samples = say(engine, LONG_TEXT, max_new_tokens=12, seed=5, chunk_length=150)
    pause = int(PAUSE_SECONDS * RATE)
    assert len(samples) == 5 * 12 * FRAME + 4 * pause
    # The first chunk comes first, made exactly as if it were the whole text.
    alone = say(engine, chunks[0], max_new_tokens=12, seed=5)
    assert np.array_equal(samples[: 12 * FRAME], alone)
    assert not np.any(samples[12 * FRAME : 12 * FRAME + pause])  # the pause between chunks
    # Later chunks are not copies of the first: they speak their own text.
    assert not np.array_equal(samples[12 * FRAME + pause : 24 * FRAME + pause], alone)


def test_cjk_text_is_chunked_too(engine: FishSpeechEngine) -> None:
    text = "今天天气很好，我们去公园散步吧。" * 12
    count = len(split_text(text, 100))
    assert count == 2
    samples = say(engine, text, max_new_tokens=8, seed=3, chunk_length=100)
    assert len(samples) == count * 8 * FRAME + (count - 1) * int(PAUSE_SECONDS * RATE)


def test_a_stop_request_ends_generation_at_the_next_step(engine: FishSpeechEngine) -> None:
    polls = 0

    def stop_after_a_few_tokens() -> bool:
        nonlocal polls
        polls += 1
        return polls > 5

    request = SynthesisRequest(
        "Stop me.",
        params=EngineParams(max_new_tokens=2000, seed=1),
        should_stop=stop_after_a_few_tokens,
    )
    steps = engine.loop.stats.steps
    with pytest.raises(Canceled):
        engine.synthesize(request)
    # Asked before every step (once more while waiting to join), and obeyed at once.
    assert engine.loop.stats.steps - steps <= 6
    assert not engine.loop.scheduler.running  # its slot is free again


def test_out_of_memory_fails_the_job_and_the_engine_goes_on(
    engine: FishSpeechEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    decode = engine.codec.decode
    calls = 0

    def decode_once_out_of_memory(codes: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if calls == 1:  # what a CUDA allocation failure raises
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return decode(codes)

    monkeypatch.setattr(engine.codec, "decode", decode_once_out_of_memory)
    with pytest.raises(SynthesisError) as failed:
        say(engine, "Too big for the GPU.", max_new_tokens=8, seed=1)
    assert failed.value.code == "gpu_out_of_memory"
    assert len(say(engine, "The next job works.", max_new_tokens=8, seed=1)) == 8 * FRAME


def test_a_prompt_longer_than_the_context_is_refused(engine: FishSpeechEngine) -> None:
    # The tiny model takes 4096 - 2048 prompt tokens; its tokenizer has one per byte.
    with pytest.raises(PromptTooLong):
        build_prompt(engine.model, "x" * 2100, [], engine.context)
    codes = torch.zeros((4, 100), dtype=torch.int32)
    reference = [("a reference", codes)]
    assert build_prompt(engine.model, "short", reference, engine.context).shape[1] < 2048


def _copy(checkpoint: FishCheckpoint, tmp_path: Path) -> Path:
    directory = tmp_path / "checkpoint"
    shutil.copytree(checkpoint.directory, directory)
    return directory


def _break_config(directory: Path, **changes: object) -> None:
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, **changes}))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: shutil.rmtree(d), "is not a directory"),
        (lambda d: (d / "codec.pth").unlink(), "lacks codec.pth"),
        (lambda d: (d / "config.json").write_text("{not json"), "config.json is not valid JSON"),
        (lambda d: _break_config(d, model_type="naive"), "model_type must be 'dual_ar'"),
        (lambda d: _break_config(d, n_layer=3), "lacks 9 weight(s) the config needs"),
        (lambda d: _break_config(d, dim=96), "does not match its config"),
        (lambda d: (d / "model.pth").write_bytes(b"truncated"), "cannot be read"),
    ],
    ids=["missing", "no-codec", "bad-json", "not-dual-ar", "layers", "shape", "corrupt"],
)
def test_a_bad_checkpoint_names_what_is_wrong(
    fish_checkpoint: FishCheckpoint, tmp_path: Path, damage: object, message: str
) -> None:
    directory = _copy(fish_checkpoint, tmp_path)
    damage(directory)  # type: ignore[operator]
    with pytest.raises(CheckpointError) as raised:
        FishModel.load(options(fish_checkpoint, directory))
    assert message in str(raised.value)


def test_a_missing_setting_or_codec_config_is_named(fish_checkpoint: FishCheckpoint) -> None:
    with pytest.raises(CheckpointError, match="SHOAL_FISH_CHECKPOINT is not set"):
        FishModel.load(FishOptions(checkpoint=None))
    wrong = FishOptions(fish_checkpoint.directory, codec_config="no_such_codec", device="cpu")
    with pytest.raises(ValueError, match=r"'no_such_codec'.*not one of the package's configs"):
        FishModel.load(wrong)


def test_the_worker_refuses_to_start_on_a_bad_checkpoint(
    env: Env, fish_checkpoint: FishCheckpoint, tmp_path: Path
) -> None:
    directory = _copy(fish_checkpoint, tmp_path)
    (directory / "tokenizer.tiktoken").unlink()
    worker_env = env.with_(
        SHOAL_ENGINE="fish-speech",
        SHOAL_FISH_CHECKPOINT=str(directory),
        SHOAL_FISH_CODEC_CONFIG=str(fish_checkpoint.codec_config),
    )
    done = subprocess.run(
        [sys.executable, "-m", "worker", "--name", "bad-fish@tests"],
        env=worker_env.full(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "shoal worker cannot start" in done.stderr
    assert f"{directory} lacks tokenizer.tiktoken" in done.stderr


def test_generation_runs_beside_a_heartbeat_thread(engine: FishSpeechEngine) -> None:
    # The worker's heartbeat renews the lease from another thread while torch runs.
    beats = 0
    done = threading.Event()

    def heartbeat() -> None:
        nonlocal beats
        while not done.wait(0.01):
            beats += 1

    thread = threading.Thread(target=heartbeat)
    thread.start()
    try:
        say(engine, LONG_TEXT, max_new_tokens=16, seed=2, chunk_length=150)
    finally:
        done.set()
        thread.join()
    assert beats > 3
