"""What admitting newcomers costs: by shape, under GIL contention, in the mix.

Run by `bench/fish_h200.py admission` inside the worker-like child, on an idle
engine (its decode thread waits for work, so the slots are free):

- one admission (`ModelRunner.join_many`) per shape, each shape twice: the
  first time pays whatever the libraries build per new shape, the second not;
- the same with another thread spinning in Python, at several switch
  intervals: the admitting thread waits that long for the GIL after every call
  that lets it go;
- the 200-job mix at each of those switch intervals, with each prefill's host
  time on the admission thread (`ModelRunner.prefill_many`) split into its
  upload and its forward.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch

from worker.engines.fish import runner as runner_module
from worker.engines.fish.prompt import Sampling
from worker.engines.fish.runner import ModelRunner, Newcomer, Prefilled

SHAPES = [(1, 30), (1, 370), (11, 370), (64, 30), (64, 64)]  # newcomers, prompt length
INTERVALS = [0.005, 0.0005, 0.0001]  # Python's default switch interval, then shorter ones


@contextmanager
def timed_admissions() -> Iterator[list[dict[str, float]]]:
    """Every prefill's newcomers, longest prompt and host milliseconds (upload, forward, all)."""
    admissions: list[dict[str, float]] = []
    names = vars(runner_module)  # the runner calls step.prefill by the name it imported
    prefill, upload, many = names["prefill"], ModelRunner._upload, ModelRunner.prefill_many
    current: dict[str, float] = {}

    def timed_prefill(*args: Any) -> None:
        started = time.perf_counter()
        prefill(*args)
        current["prefill_ms"] = (time.perf_counter() - started) * 1e3

    def timed_upload(self: ModelRunner, *tensors: torch.Tensor) -> list[torch.Tensor]:
        started = time.perf_counter()
        moved = upload(self, *tensors)
        current["upload_ms"] = (time.perf_counter() - started) * 1e3
        return moved

    def timed_prefill_many(self: ModelRunner, newcomers: list[Newcomer]) -> Prefilled:
        started = time.perf_counter()
        prefilled = many(self, newcomers)
        admissions.append({
            "newcomers": len(newcomers),
            "longest": max(n.prompt.shape[1] for n in newcomers),
            **current,
            "total_ms": (time.perf_counter() - started) * 1e3,
        })  # fmt: skip
        return prefilled

    names["prefill"] = timed_prefill
    ModelRunner._upload = timed_upload  # type: ignore[method-assign]
    ModelRunner.prefill_many = timed_prefill_many  # type: ignore[method-assign]
    try:
        yield admissions
    finally:
        names["prefill"] = prefill
        ModelRunner._upload = upload  # type: ignore[method-assign]
        ModelRunner.prefill_many = many  # type: ignore[method-assign]


@contextmanager
def spinning() -> Iterator[None]:
    """Another thread busy in Python (the codec's launches, a job's prompt) while inside."""
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def admit_once(engine: Any, count: int, length: int, spin: bool = False) -> float:
    """Host milliseconds of one admission of `count` random prompts into slots 0..count-1."""
    run: ModelRunner = engine.runner
    count = min(count, run.slots)
    prompts = [torch.randint(0, 50, (run.m.rows, length)) for _ in range(count)]
    _sync()
    with spinning() if spin else nullcontext():
        started = time.perf_counter()
        run.join_many([Newcomer(i, p, Sampling(), seed=1) for i, p in enumerate(prompts)])
        host = time.perf_counter() - started
    for slot in range(count):
        run.leave(slot)
    _sync()
    return round(host * 1e3, 1)


def admissions(engine: Any, mix_jobs: int) -> dict[str, Any]:
    from bench.fish_serve import mix

    before = sys.getswitchinterval()
    out: dict[str, Any] = {"switch_interval_at_start_s": before}
    out["by_shape_ms"] = {
        f"{c}x{n}": [admit_once(engine, c, n), admit_once(engine, c, n)] for c, n in SHAPES
    }
    spun: dict[str, Any] = {}
    for interval in INTERVALS:
        sys.setswitchinterval(interval)
        spun[f"{interval * 1e3:g}ms"] = {
            f"{c}x{n}": admit_once(engine, c, n, spin=True) for c, n in ((1, 30), (11, 370))
        }
    out["another_thread_spinning_ms"] = spun
    for interval in INTERVALS:
        sys.setswitchinterval(interval)
        with timed_admissions() as timed:
            result = mix(engine, mix_jobs)
        key = f"mix_switch_{interval * 1e3:g}ms"
        out[key] = {
            "jobs_per_gpu_hour": result["jobs_per_gpu_hour"],
            "prefill_s": result.get("mix_prefill_s"),
            "admissions": len(timed),
            **{
                f"mean_{part}": round(statistics.mean(a.get(part, 0.0) for a in timed), 2)
                for part in ("upload_ms", "prefill_ms", "total_ms")
                if timed
            },
        }
    sys.setswitchinterval(before)
    return {"admission": out}
