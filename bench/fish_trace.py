"""Where a running engine's GPU time goes: kernels per CUDA stream, and what the loop waits on.

Used by bench/fish_serve.py's `profile` part. `gpu_timeline` records CUDA
kernels only (CUPTI, every thread) while inside and sums them per stream:
busy time, the union over all streams, and, for the stream of the most
kernels (the decode step's), its idle gaps and how much of them another
stream's kernels covered. `sampled` records the batch's occupancy every few
milliseconds (sequences running, waiting for a slot, windows queued for the
codec) through `polled`, which fish_serve.py's GPU utilisation uses too.
"""

from __future__ import annotations

import itertools
import statistics
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


def _union(intervals: list[tuple[int, int]]) -> int:
    total, end = 0, -1
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def _overlap(gaps: list[tuple[int, int]], busy: list[tuple[int, int]]) -> int:
    """Nanoseconds of `gaps` covered by the union of `busy` (both sorted, gaps disjoint)."""
    merged: list[list[int]] = []
    for start, stop in sorted(busy):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    covered, j = 0, 0
    for start, stop in gaps:
        while j < len(merged) and merged[j][1] <= start:
            j += 1
        k = j
        while k < len(merged) and merged[k][0] < stop:
            covered += min(stop, merged[k][1]) - max(start, merged[k][0])
            k += 1
    return covered


def summarize(kernels: list[tuple[int, int, int]]) -> dict[str, Any]:
    """(stream, start ns, end ns) of every kernel -> the figures described above."""
    if not kernels:
        return {}
    first = min(k[1] for k in kernels)
    last = max(k[2] for k in kernels)
    streams: dict[int, list[tuple[int, int]]] = {}
    for stream, start, stop in kernels:
        streams.setdefault(stream, []).append((start, stop))
    out: dict[str, Any] = {
        "wall_ms": round((last - first) / 1e6, 1),
        "busy_any_stream_ms": round(_union([(s, e) for _, s, e in kernels]) / 1e6, 1),
        "streams": {
            str(stream): {
                "kernels": len(spans),
                "busy_ms": round(_union(spans) / 1e6, 1),
                "mean_kernel_us": round(statistics.mean(e - s for s, e in spans) / 1e3, 1),
            }
            for stream, spans in sorted(streams.items(), key=lambda kv: -len(kv[1]))
        },
    }
    decode = max(streams, key=lambda s: len(streams[s]))
    spans = sorted(streams[decode])
    gaps = [(a[1], b[0]) for a, b in itertools.pairwise(spans) if b[0] > a[1]]
    others = [span for stream, items in streams.items() if stream != decode for span in items]
    out["decode_stream_gaps_ms"] = round(sum(b - a for a, b in gaps) / 1e6, 1)
    out["decode_gaps_covered_by_other_streams_ms"] = round(_overlap(gaps, others) / 1e6, 1)
    out["decode_gaps_over_100us"] = sum(1 for a, b in gaps if b - a > 100_000)
    return out


@contextmanager
def gpu_timeline() -> Iterator[dict[str, Any]]:
    """Kernel figures of everything the GPU runs while inside (filled in on exit)."""
    import torch
    from torch._C._autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    result: dict[str, Any] = {}
    if not torch.cuda.is_available():  # nothing to record
        yield result
        return
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        yield result
    kernels = [
        (e.device_resource_id(), e.start_ns(), e.start_ns() + e.duration_ns())
        for e in prof.profiler.kineto_results.events()
        if e.device_type() == DeviceType.CUDA and e.duration_ns() > 0
    ]
    result.update(summarize(kernels))


@contextmanager
def polled(read: Callable[[], T], every: float) -> Iterator[list[T]]:
    """`read()` every `every` seconds from a thread while inside: the list of readings."""
    readings: list[T] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(every):
            readings.append(read())

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield readings
    finally:
        stop.set()
        thread.join()


@contextmanager
def sampled(engine: Any, every: float = 0.005) -> Iterator[dict[str, Any]]:
    """The batch's mean occupancy while inside: running, waiting and codec-queued."""
    scheduler = engine.loop.scheduler

    def occupancy() -> tuple[int, int, int]:
        return len(scheduler.running), len(scheduler.waiting), engine.codec._queue.qsize()

    result: dict[str, Any] = {}
    with polled(occupancy, every) as samples:
        yield result
    if samples:
        running, waiting, queued = zip(*samples, strict=True)
        result.update(
            running_mean=round(statistics.mean(running), 1),
            running_full_pct=round(100 * sum(r == engine.slots for r in running) / len(running), 1),
            waiting_mean=round(statistics.mean(waiting), 1),
            codec_queued_mean=round(statistics.mean(queued), 1),
        )
