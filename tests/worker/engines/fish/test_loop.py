"""Continuous batching through the engine, as the worker's threads call it (CPU, fp32).

Jobs join a running batch and leave it when they end; a job that stops frees its
slot at the next step while the others go on; a job that fails alone fails
alone. The tiny checkpoint never reaches end of speech, so a chunk is exactly
`max_new_tokens` frames of 2048 samples.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
import torch

from shoal.errors import Canceled, SynthesisError
from shoal.jobs import EngineParams
from worker.engines.base import Speech, SynthesisRequest
from worker.engines.fish import BatchOptions, FishSpeechEngine
from worker.engines.fish.engine import PAUSE_SECONDS
from worker.engines.fish.loop import SWITCH_INTERVAL_S
from worker.engines.fish.model import FishModel, FishOptions
from worker.engines.fish.runner import Newcomer, Prefilled
from worker.engines.fish.sequence import Sequence

FRAME = 2048


@pytest.fixture(scope="module")
def engine(model: FishModel) -> FishSpeechEngine:
    engine = FishSpeechEngine(model, BatchOptions(slots=3, codec_window=48, codec_overlap=8))
    engine.warm_up()
    return engine


def request(text: str, frames: int, seed: int, **kwargs: Any) -> SynthesisRequest:
    return SynthesisRequest(text, params=EngineParams(max_new_tokens=frames, seed=seed), **kwargs)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.005)


def test_a_started_loop_takes_the_gil_back_within_a_short_switch_interval(
    engine: FishSpeechEngine,
) -> None:
    assert engine.loop.alive
    assert sys.getswitchinterval() <= SWITCH_INTERVAL_S < 0.005  # Python's default: 5 ms


def test_jobs_join_and_leave_a_running_batch_and_sound_as_alone(engine: FishSpeechEngine) -> None:
    jobs = [("A long job that runs throughout.", 120, 1), ("Short.", 16, 2), ("Medium.", 40, 3)]
    alone = [engine.synthesize(request(*job)).samples for job in jobs]
    finished: list[int] = []
    seen_together = 0

    def run(index: int) -> Speech:
        speech = engine.synthesize(request(*jobs[index]))
        finished.append(index)
        return speech

    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(run, 0)
        wait_until(lambda: len(engine.loop.scheduler.running) == 1, "the long job runs")
        later = [pool.submit(run, 1), pool.submit(run, 2)]  # they join mid-batch
        while not first.done():
            seen_together = max(seen_together, len(engine.loop.scheduler.running))
            time.sleep(0.002)
        results = [first.result(), *(f.result() for f in later)]
    assert seen_together >= 2  # they really shared the batch
    assert finished[-1] == 0  # the short ones left without waiting for the long one
    for speech, reference, (_, frames, _) in zip(results, alone, jobs, strict=True):
        assert len(speech.samples) == frames * FRAME
        np.testing.assert_allclose(speech.samples, reference, atol=1e-5)
    assert not engine.loop.scheduler.running


def test_a_job_stopped_mid_batch_frees_its_slot_and_the_others_go_on(
    engine: FishSpeechEngine,
) -> None:
    stop = threading.Event()
    victim = request(
        "Cancel me soon.", 2000, 4, should_stop=stop.is_set, on_audio=lambda _: stop.set()
    )
    with ThreadPoolExecutor(3) as pool:
        others = [pool.submit(engine.synthesize, request("Keep going.", 160, s)) for s in (5, 6)]
        canceled: Future[Speech] = pool.submit(engine.synthesize, victim)
        with pytest.raises(Canceled):
            canceled.result(timeout=120)  # it stopped at its first audio, not after 2000 frames
        wait_until(lambda: len(engine.loop.scheduler.running) <= 2, "its slot is freed")
        assert not all(f.done() for f in others)  # the others were still running
        for future in others:
            assert len(future.result().samples) == 160 * FRAME


def test_a_job_that_fails_to_join_fails_alone(
    engine: FishSpeechEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefill_many = engine.runner.prefill_many
    doomed = engine.prompt("This one cannot fit.", [])
    groups: list[int] = []

    def prefill_or_run_out_of_memory(newcomers: list[Newcomer]) -> Prefilled:
        groups.append(len(newcomers))
        if any(torch.equal(n.prompt, doomed) for n in newcomers):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")
        return prefill_many(newcomers)

    monkeypatch.setattr(engine.runner, "prefill_many", prefill_or_run_out_of_memory)
    scheduler = engine.loop.scheduler
    admit = scheduler.admit
    deadline = time.monotonic() + 30

    def admit_all_three_at_once() -> list[Sequence]:  # so that they join as one group
        if len(scheduler.waiting) < 3 and time.monotonic() < deadline:
            return []
        return admit()

    monkeypatch.setattr(scheduler, "admit", admit_all_three_at_once)
    with ThreadPoolExecutor(3) as pool:
        fine = [pool.submit(engine.synthesize, request("Fine.", 48, s)) for s in (7, 8)]
        failing = pool.submit(engine.synthesize, request("This one cannot fit.", 48, 9))
        with pytest.raises(SynthesisError) as raised:
            failing.result(timeout=120)
        assert raised.value.code == "gpu_out_of_memory"
        assert [len(f.result().samples) for f in fine] == [48 * FRAME, 48 * FRAME]
    assert engine.loop.alive
    assert groups == [3, 1, 1, 1]  # together, then each alone: only the doomed one fails


def hold_prefill(
    engine: FishSpeechEngine, monkeypatch: pytest.MonkeyPatch, text: str
) -> tuple[threading.Event, threading.Event]:
    """From now on, the prefill of `text`'s prompt signals the first event, then waits for
    the second (on the admission thread)."""
    prefill_many = engine.runner.prefill_many
    held = engine.prompt(text, [])
    started, release = threading.Event(), threading.Event()

    def prefill(newcomers: list[Newcomer]) -> Prefilled:
        if any(torch.equal(n.prompt, held) for n in newcomers):
            started.set()
            assert release.wait(60)
        return prefill_many(newcomers)

    monkeypatch.setattr(engine.runner, "prefill_many", prefill)
    return started, release


def test_running_sequences_go_on_decoding_while_a_newcomer_prefills(
    engine: FishSpeechEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "A newcomer whose prefill takes a while."
    alone = engine.synthesize(request(text, 24, 13)).samples
    started, release = hold_prefill(engine, monkeypatch, text)
    scheduler = engine.loop.scheduler
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(engine.synthesize, request("A long job, decoding.", 600, 14))
        wait_until(lambda: len(scheduler.running) == 1, "the long job runs")
        joining = pool.submit(engine.synthesize, request(text, 24, 13))
        assert started.wait(30)
        steps = engine.loop.stats.steps
        wait_until(lambda: engine.loop.stats.steps >= steps + 20, "the batch steps meanwhile")
        assert len(scheduler.joining) == 1 and len(scheduler.running) == 1  # not stepped yet
        release.set()
        np.testing.assert_allclose(joining.result(timeout=120).samples, alone, atol=1e-5)
        assert len(running.result(timeout=120).samples) == 600 * FRAME


def test_a_job_stopped_while_it_prefills_fails_canceled_and_frees_its_slot(
    engine: FishSpeechEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "Canceled while its prompt prefills."
    started, release = hold_prefill(engine, monkeypatch, text)
    stop = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        canceled = pool.submit(engine.synthesize, request(text, 400, 15, should_stop=stop.is_set))
        assert started.wait(30)
        stop.set()
        assert not engine.loop.scheduler.idle  # its slot stays taken while it prefills
        release.set()
        with pytest.raises(Canceled):
            canceled.result(timeout=60)
    wait_until(lambda: engine.loop.scheduler.idle, "its slot is free again")
    assert len(engine.synthesize(request("Next.", 8, 16)).samples) == 8 * FRAME


def test_a_burst_with_cancels_at_random_moments_ends_every_job_and_frees_every_slot(
    engine: FishSpeechEngine,
) -> None:
    """Jobs waiting, prefilling, decoding and stopping at random moments (3 slots, 16 jobs
    from 8 threads): each ends once, its audio whole or canceled; the batch is empty after."""
    rng = random.Random(20261203)
    delays = [None, None, 0.0, 0.05, 0.3, 1.0]  # seconds to the cancel; None: never
    plans = [(rng.randint(8, 60), rng.choice(delays)) for _ in range(16)]
    plans[0] = (60, 0.0)  # one canceled at once, whatever the draw

    def run(index: int, frames: int, cancel_after: float | None) -> int | None:
        stop = threading.Event()
        if cancel_after is not None:
            threading.Timer(cancel_after, stop.set).start()
        job = request(f"Job {index} of the burst.", frames, index, should_stop=stop.is_set)
        try:
            return len(engine.synthesize(job).samples)
        except Canceled:
            return None

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(run, i, *plan) for i, plan in enumerate(plans)]
        outcomes = [future.result(timeout=180) for future in futures]
    for (frames, cancel_after), outcome in zip(plans, outcomes, strict=True):
        assert outcome in ((frames * FRAME,) if cancel_after is None else (None, frames * FRAME))
    assert outcomes[0] is None
    wait_until(lambda: engine.loop.scheduler.idle, "every slot free, nothing prefilling")
    assert engine.loop.alive


def test_audio_streams_in_windows_whose_join_is_the_result(engine: FishSpeechEngine) -> None:
    pieces: list[np.ndarray] = []
    text = "First sentence of the stream. And a second one after it."
    params = EngineParams(max_new_tokens=100, seed=10, chunk_length=100)
    speech = engine.synthesize(SynthesisRequest(text * 2, params=params, on_audio=pieces.append))
    assert len(pieces) > 4  # windows of 48 frames, and the pause between chunks
    assert np.array_equal(np.concatenate(pieces), speech.samples)
    assert len(pieces[0]) == 48 * FRAME  # the first window, as soon as its frames exist


def test_a_long_texts_later_chunks_run_side_by_side_and_join_in_order(
    engine: FishSpeechEngine, cpu_options: FishOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = " ".join(
        f"Sentence number {n} is one chunk of this text: a chunk holds it alone." for n in range(4)
    )
    params = EngineParams(max_new_tokens=30, seed=11, chunk_length=100)
    submitted: list[Sequence] = []
    submit = engine.loop.submit

    def recorded(sequence: Sequence) -> None:
        submitted.append(sequence)
        submit(sequence)

    monkeypatch.setattr(engine.loop, "submit", recorded)
    pieces: list[np.ndarray] = []
    speech = engine.synthesize(SynthesisRequest(text, params=params, on_audio=pieces.append))
    assert [s.index for s in submitted] == [0, 1, 2, 3]
    # The three later chunks were in the batch at once (three slots), not one after the other.
    assert sorted(s.slot or 0 for s in submitted[1:]) == [0, 1, 2]
    # One slot makes them one after the other: the same audio, in the same order.
    one = FishSpeechEngine(
        FishModel.load(cpu_options), BatchOptions(codec_window=48, codec_overlap=8)
    )
    sequential = one.synthesize(SynthesisRequest(text, params=params)).samples
    pause = int(PAUSE_SECONDS * 44100)
    assert len(speech.samples) == len(sequential) == 4 * 30 * FRAME + 3 * pause
    np.testing.assert_allclose(speech.samples, sequential, atol=1e-5)
    assert np.array_equal(np.concatenate(pieces), speech.samples)  # streamed in order too
