"""The worker-like child of bench/fish_h200.py: start the engine, then measure it.

It loads the engine exactly as a worker does (FishSpeechEngine.from_settings:
load, capture, compile, warm up), prints READY, runs the measurements asked
for, and prints a PART line of JSON as each measurement ends. Jobs go through `synthesize` from
one thread each, as the worker's threads pool calls it.
"""

from __future__ import annotations

import json
import math
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Any

import numpy as np
import torch

from bench.fish_trace import gpu_timeline, polled, sampled
from shoal.errors import SynthesisError
from shoal.jobs import EngineParams
from shoal.settings import Settings
from worker.engines.base import Speech, SynthesisRequest

FRAME = 2048  # samples per frame
FRAME_RATE = 44100 / FRAME
TEXT = (
    "The committee will meet on Thursday to review the budget, and every department "
    "head should bring a one page summary of spending, hiring plans and the risks they "
    "see for the coming quarter, so that decisions can be made quickly."
)  # 40 words, 227 characters: one chunk at chunk_length 300
MIX = [(0.5, 60), (0.35, 250), (0.15, 900)]  # (share of jobs, characters)
CHARS_PER_SECOND = 15.0  # read-aloud English, to size each job's audio


def say(engine: Any, text: str, frames: int, seed: int = 1, chunk: int = 300) -> Speech:
    params = EngineParams(max_new_tokens=frames, seed=seed, chunk_length=chunk)
    speech: Speech = engine.synthesize(SynthesisRequest(text, params=params))
    return speech


def mix_jobs(count: int) -> list[tuple[str, int]]:
    """(text, frames per chunk) of the realistic mix: notifications, paragraphs, articles."""
    words = (TEXT + " ") * 8
    plan = [chars for share, chars in MIX for _ in range(round(share * count))]
    jobs = []
    for chars in plan:
        text = words[:chars].rsplit(" ", 1)[0] + "."
        jobs.append((text, math.ceil(min(chars, 200) / CHARS_PER_SECOND * FRAME_RATE)))
    return jobs


def _gb(value: float) -> float:
    return round(value / 1e9, 2)


@contextmanager
def gpu_utilization() -> Iterator[dict[str, float]]:
    """The GPU's mean utilisation (nvidia-smi's 'utilization.gpu') while inside."""
    result: dict[str, float] = {}
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    except Exception:  # no NVML (CPU runs): no figure
        yield result
        return
    with polled(lambda: int(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu), 0.1) as samples:
        yield result
    if samples:
        result["gpu_util_pct"] = round(statistics.mean(samples), 1)


def _peak_reset() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak() -> float | None:
    return _gb(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else None


def _concurrently(jobs: list[Callable[[], Any]], threads: int) -> tuple[float, list[float]]:
    """Run the jobs from `threads` threads; returns (wall seconds, each job's seconds)."""
    latencies: list[float] = []

    def timed(job: Callable[[], Any]) -> None:
        started = time.perf_counter()
        job()
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(timed, job) for job in jobs]:
            future.result()  # a failing job fails the benchmark
    return time.perf_counter() - started, latencies


def waves(engine: Any, frames: int, sizes: tuple[int, ...]) -> dict[str, Any]:
    """Aggregate and per-stream speed with `size` jobs at once, codec included."""
    out: dict[str, Any] = {}
    say(engine, TEXT, frames)  # warm at this length
    for size in sizes:
        if size > engine.slots:
            continue
        jobs: list[Callable[[], Any]] = [
            partial(say, engine, TEXT, frames, seed=seed) for seed in range(size)
        ]
        _peak_reset()
        before = _loop_seconds(engine)
        with gpu_utilization() as util:
            wall, latencies = _concurrently(jobs, size)
        util.update(_since(engine, before))
        out[f"b{size}"] = {
            "frames_per_s": round(size * frames / wall, 1),
            "per_stream_frames_per_s": round(frames / statistics.median(latencies), 1),
            "per_stream_x_real_time": round(frames / FRAME_RATE / statistics.median(latencies), 1),
            "wall_s": round(wall, 2),
            "peak_gb": _peak(),
            **util,
        }
        print("WAVE", size, json.dumps(out[f"b{size}"]), flush=True)
    return {"frames": frames, "waves": out}


def lm_only(engine: Any, sizes: tuple[int, ...]) -> dict[str, Any]:
    """The decode step alone (no codec, no host loop) at each batch size: the ceiling."""
    from worker.engines.fish.prompt import Sampling

    runner = engine.runner
    out = {}
    for size in sizes:
        if size > runner.slots:
            continue
        prompt = torch.zeros((runner.m.rows, 100), dtype=torch.long)
        for slot in range(size):
            runner.join(slot, prompt, Sampling(), seed=slot)
        runner.step(size, 200)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(50):
            runner.step(size, 200)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - started) / 50
        out[f"b{size}"] = {
            "step_ms": round(seconds * 1000, 2),
            "frames_per_s": round(size / seconds),
        }
        for slot in range(size):
            runner.leave(slot)
    return out


def codec_only(engine: Any) -> dict[str, Any]:
    """Codec decode speed per call shape, on its own stream, as the engine runs it."""
    codec = engine.codec
    codebooks = engine.runner.m.codebooks
    out: dict[str, Any] = {"compiled": codec.compiled}
    for batch, frames in ((1, 256), (8, 256)):
        codes = torch.randint(0, 512, (batch, codebooks, frames), device=engine.model.device)
        with codec._on_stream():
            codec.decode(codes).cpu()
            started = time.perf_counter()
            for _ in range(3):
                codec.decode(codes).cpu()
            seconds = (time.perf_counter() - started) / 3
        audio = batch * frames / FRAME_RATE
        out[f"b{batch}x{frames}_audio_s_per_s"] = round(audio / seconds, 1)
    return out


def mix(engine: Any, count: int, prefix: str = "mix") -> dict[str, Any]:
    """Jobs per GPU-hour for the mix, `slots` jobs at a time.

    With `count` jobs the queue stays non-empty until the last `slots` jobs
    start: 200 jobs is three waves of 64 and a tail; three times that shows
    what a worker with a queue (a loaded one) does, its tail weighing less.
    """
    jobs = mix_jobs(count)
    calls: list[Callable[[], Any]] = [
        partial(say, engine, t, f, seed=s, chunk=200) for s, (t, f) in enumerate(jobs)
    ]
    before = _loop_seconds(engine)
    with gpu_utilization() as util, sampled(engine) as occupancy:
        wall, latencies = _concurrently(calls, engine.slots)
    util.update(occupancy)
    util.update(_since(engine, before))
    audio = sum(len(t) for t, _ in jobs) / CHARS_PER_SECOND
    rate = "jobs_per_gpu_hour" if prefix == "mix" else f"{prefix}_jobs_per_gpu_hour"
    return {
        f"{prefix}_jobs": len(jobs),
        f"{prefix}_wall_s": round(wall, 1),
        rate: round(len(jobs) / wall * 3600),
        f"{prefix}_latency_p50_s": round(statistics.median(latencies), 2),
        f"{prefix}_latency_p95_s": round(sorted(latencies)[int(0.95 * len(latencies))], 2),
        f"{prefix}_audio_s_approx": round(audio),
        **{f"{prefix}_{k}": v for k, v in util.items()},
    }


def many(engine: Any, count: int) -> dict[str, Any]:
    """Memory across many short jobs: allocated and reserved at checkpoints."""
    marks = sorted({n for n in (1, 100, count // 4, count // 2, count) if n <= count})
    memory: dict[str, list[float]] = {"allocated_gb": [], "reserved_gb": []}
    started = time.perf_counter()
    done = 0
    for mark in marks:
        calls: list[Callable[[], Any]] = [
            partial(say, engine, TEXT[: 40 + (j * 37) % 180], 24 + j % 40, seed=j)
            for j in range(done, mark)
        ]
        _concurrently(calls, engine.slots)
        done = mark
        if torch.cuda.is_available():
            memory["allocated_gb"].append(_gb(torch.cuda.memory_allocated()))
            memory["reserved_gb"].append(_gb(torch.cuda.memory_reserved()))
    return {
        "many_jobs": count,
        "many_seconds": round(time.perf_counter() - started, 1),
        "memory_at_jobs": marks,
        **memory,
    }


def determinism(engine: Any) -> dict[str, Any]:
    alone = say(engine, TEXT, 64, seed=7).samples
    again = say(engine, TEXT, 64, seed=7).samples
    other = say(engine, TEXT, 64, seed=8).samples
    crowd: list[Callable[[], Any]] = [
        partial(say, engine, TEXT, 96, seed=100 + s) for s in range(engine.slots - 1)
    ]
    inside: list[Any] = []
    crowd.append(lambda: inside.append(say(engine, TEXT, 64, seed=7).samples))
    _concurrently(crowd, engine.slots)
    return {
        "same_seed_same_audio": bool(np.array_equal(alone, again)),
        "other_seed_other_audio": not bool(np.array_equal(alone, other)),
        "alone_vs_in_full_batch_identical": bool(np.array_equal(alone, inside[0])),
        "alone_vs_in_full_batch_max_diff": float(np.max(np.abs(alone - inside[0]))),
    }


def out_of_memory(engine: Any) -> dict[str, Any]:
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info()
    hog = torch.empty(free - (32 << 20), dtype=torch.uint8, device="cuda")
    code = "no error"
    try:
        say(engine, TEXT * 4, 256, chunk=300)
    except SynthesisError as exc:
        code = exc.code
    del hog
    torch.cuda.empty_cache()
    recovered = len(say(engine, TEXT, 64).samples) == 64 * FRAME
    return {"oom_job_error": code, "next_job_after_oom_ok": recovered}


def _loop_seconds(engine: Any) -> dict[str, float]:
    stats = engine.loop.stats
    names = ("prefill_s", "launch_s", "device_wait_s", "idle_s", "steps", "admissions")
    return {k: round(getattr(stats, k), 3) for k in names}


def _since(engine: Any, before: dict[str, float]) -> dict[str, float]:
    return {k: round(v - before[k], 3) for k, v in _loop_seconds(engine).items()}


def profile(engine: Any) -> dict[str, Any]:
    """Where the time goes: a batch-1 job and the 600-job mix, kernels per stream and occupancy."""
    small = not torch.cuda.is_available()
    frames, jobs, wait = (64, 60, 1.0) if small else (512, 600, 30.0)
    out: dict[str, Any] = {}
    say(engine, TEXT, frames)
    before = _loop_seconds(engine)
    started = time.perf_counter()
    say(engine, TEXT, frames)
    out["b1"] = {"wall_s": round(time.perf_counter() - started, 3), **_since(engine, before)}
    before = _loop_seconds(engine)
    started = time.perf_counter()
    with gpu_timeline() as timeline:
        say(engine, TEXT, frames)
    out["b1_traced"] = {
        "wall_s": round(time.perf_counter() - started, 3),
        **timeline,
        **_since(engine, before),
    }
    window: dict[str, Any] = {}

    def trace_window() -> None:  # a few seconds in the middle of the mix
        time.sleep(wait)
        with gpu_timeline() as timeline:
            time.sleep(3)
        window.update(timeline)

    tracer = threading.Thread(target=trace_window)
    tracer.start()
    out["mix_x3"] = mix(engine, jobs, prefix="mix_x3")  # occupancy and the loop's clock too
    tracer.join()
    out["mix_x3"]["trace_3s"] = window
    return {"profile": out}


@contextmanager
def step_runs() -> Iterator[list[tuple[int, int, float]]]:
    """(rows, length, host seconds) of every uncaptured step run while inside: the warm-up.

    Host time, unsynchronised, so the start it measures stays the worker's: what
    a first run of a shape builds (plans, kernels) is host work.
    """
    from worker.engines.fish.runner import ModelRunner

    runs: list[tuple[int, int, float]] = []
    run = ModelRunner._run

    def timed(self: ModelRunner, rows: int, length: int) -> None:
        capturing = torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()
        started = time.perf_counter()
        run(self, rows, length)
        if not capturing:
            runs.append((rows, length, round(time.perf_counter() - started, 3)))

    ModelRunner._run = timed  # type: ignore[method-assign]
    try:
        yield runs
    finally:
        ModelRunner._run = run  # type: ignore[method-assign]


def serve(settings: Settings, bench: str | None, spawned_at: float | None = None) -> None:
    started = time.perf_counter()
    python_s = None if spawned_at is None else round(time.time() - spawned_at, 1)
    from worker.engines.fish import FishSpeechEngine
    from worker.engines.fish.step import EAGER

    imported = time.perf_counter()
    with step_runs() as runs:
        engine = FishSpeechEngine.from_settings(settings, voices=None)  # type: ignore[arg-type]
    print("READY", flush=True)
    cuda = torch.cuda.is_available()
    report: dict[str, Any] = {
        "python_s": python_s,  # from the spawn: the interpreter, torch and the bench's imports
        "import_s": round(imported - started, 1),
        "start_s": round(time.perf_counter() - imported, 1),
        "slots": engine.slots,
        "context": engine.context,
        "kv_cache_gb": _gb(engine.runner.cache_bytes),
        "allocated_after_start_gb": _gb(torch.cuda.memory_allocated()) if cuda else None,
        "codec_compiled": engine.codec.compiled,
        "step_compiled": engine.runner.passes is not EAGER,
        "startup_phases": engine.startup,
        "startup_step_runs": runs,  # (rows, length, seconds): the first, then warm-up per bucket
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if cuda else "cpu",
    }
    print("PART " + json.dumps(report), flush=True)
    if bench == "profile":
        print("PART " + json.dumps(profile(engine)), flush=True)
        return
    if bench == "admission":
        from bench.fish_admission import admissions

        print("PART " + json.dumps(admissions(engine, 200 if cuda else 10)), flush=True)
        return
    if bench != "full":
        return
    small = not cuda
    sizes = (1, 8) if small else (1, 8, 32, 64)
    parts: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("lm_only", lambda: {"lm_only": lm_only(engine, sizes)}),
        ("codec_only", lambda: {"codec_only": codec_only(engine)}),
        ("waves", lambda: waves(engine, 64 if small else 512, sizes)),
        ("determinism", lambda: determinism(engine)),
        ("mix", lambda: mix(engine, 20 if small else 200)),
        ("mix_x3", lambda: mix(engine, 60 if small else 600, prefix="mix_x3")),
        ("many", lambda: many(engine, 40 if small else 2000)),
    ]
    if cuda:
        parts.append(("out_of_memory", lambda: out_of_memory(engine)))
    for name, part in parts:  # each printed as it ends: a run cut short keeps the rest
        try:
            print("PART " + json.dumps(part()), flush=True)
        except Exception as exc:
            print("PART " + json.dumps({f"failed:{name}": repr(exc)}), flush=True)
    loop = {k: v for k, v in vars(engine.loop.stats).items() if k != "batch_sizes"}
    print("PART " + json.dumps({"loop": loop}), flush=True)
