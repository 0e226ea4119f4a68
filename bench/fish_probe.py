"""Where a Fish Speech step's and the codec's time goes, on one GPU: the figures to decide by.

Not part of the documented benchmark (bench/fish_h200.py is): a one-process
probe that times, on random S1-mini weights,

- the decode step as captured by the runner, eager units against compiled
  ones (compiled.py), at several batch sizes, with each one's kernel count,
  start-up seconds and how far the compiled step's hidden state is from the
  eager one's;
- the codec's decode per call shape: eager, compiled with dynamic shapes (as
  the engine does) and compiled for one static shape, its quantizer and its
  decoder apart;
- attention (`--parts attention`): the compiled step's warm-up, capture and
  speed with PyTorch's choice of attention backend, then with cuDNN's left
  out; and a prefill's first and second run of a shape, through PyTorch's
  choice and as the engine runs it (without cuDNN);
- kernels (`--parts kernels`): the compiled step's captured graph at batch 1
  and 64, traced kernel by kernel (CUPTI): the GPU time per kind of kernel
  (matrix products, attention, sort, scan, Inductor's fused code, copies and
  indexing, reductions), the costliest kernels, and the gaps between them.

    python bench/fish_probe.py --work /tmp/fb --out probe.json --parts step,codec,attention,kernels
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

FRAME_RATE = 44100 / 2048
RESULTS: dict[str, Any] = {}


def _save(out: Path, key: str, value: Any) -> None:
    RESULTS[key] = value
    out.write_text(json.dumps(RESULTS, indent=2))
    print(key, json.dumps(value), flush=True)


def _time(run: Callable[[], Any], repeat: int) -> float:
    """Median seconds of `run` over `repeat` calls, device-synchronised."""
    run()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def _kernels(run: Callable[[], Any]) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        run()
        torch.cuda.synchronize()
    return sum(1 for e in prof.events() if e.device_type.name == "CUDA")


def _decode(codec: Any, decoder: Callable[[torch.Tensor], torch.Tensor], codes: Any) -> Any:
    return decoder(codec.quantizer.decode(codes))


def _captured(fm: Any, slots: int, compiled: bool) -> tuple[Any, dict[str, Any]]:
    """A runner with its CUDA graphs captured, and the seconds that took, by phase."""
    from worker.engines.fish.runner import ModelRunner

    started = time.perf_counter()
    runner = ModelRunner(fm, slots, 4096, graphs=True, compiled=compiled)
    runner.capture()
    return runner, {"capture_s": round(time.perf_counter() - started, 1), "phases": runner.phases}


def _fill(runner: Any) -> None:
    """A 100-column prompt in every slot (seven different ones), each with its own seed."""
    from worker.engines.fish.prompt import Sampling

    prompt = torch.zeros((runner.m.rows, 100), dtype=torch.long)
    for slot in range(runner.slots):
        runner.join(slot, prompt + (slot % 7), Sampling(), seed=slot)


def step_part(fm: Any, out: Path, slots: int) -> None:
    from worker.engines.fish import step
    from worker.engines.fish.runner import bucket

    hidden: dict[bool, torch.Tensor] = {}
    for compiled in (False, True):
        name = "compiled" if compiled else "eager"
        runner, report = _captured(fm, slots, compiled)
        report["graphs"] = len(runner._graphs)
        _fill(runner)
        with torch.inference_mode():
            hidden[compiled] = step.slow_step(
                runner.m, runner.caches, runner.state, slots, 256, runner.passes
            ).float()
            for size in (1, 8, 32, 64):
                if size > slots:
                    continue
                rows = bucket(size, runner.rows_sizes)
                seconds = _time(partial(runner.step, size, 200), 50)
                kernels = _kernels(partial(runner._run, rows, 256))
                report[f"b{size}"] = {
                    "step_ms": round(seconds * 1000, 3),
                    "frames_per_s": round(size / seconds),
                    "kernels_eager_launch": kernels,
                }
        if compiled:
            from torch._dynamo.utils import counters

            report["unique_graphs"] = counters["stats"]["unique_graphs"]
            a, b = hidden[True], hidden[False]
            report["hidden_rel_diff_vs_eager"] = float((a - b).norm() / b.norm())
        _save(out, f"step_{name}", report)
        del runner
        gc.collect()
        torch.cuda.empty_cache()


def _prefill_ms(runner: Any, prefill: Callable[..., None], count: int, length: int) -> float:
    """Host milliseconds of one prefill of `count` random prompts of `length` into slots 0.."""
    tokens = torch.randint(0, 50, (count, length, runner.m.rows), device=runner.device)
    slots = torch.arange(count, device=runner.device)
    torch.cuda.synchronize()
    started = time.perf_counter()
    with torch.inference_mode():
        prefill(runner.m, runner.caches, slots, tokens)
    torch.cuda.synchronize()
    return round((time.perf_counter() - started) * 1000, 1)


def attention_part(fm: Any, out: Path, slots: int) -> None:
    from worker.engines.fish import step

    choices = {"pytorch": step.prefill.__wrapped__, "engine": step.prefill}  # type: ignore[attr-defined]
    for name, cudnn in (("sdpa_default", True), ("sdpa_without_cudnn", False)):
        torch.backends.cuda.enable_cudnn_sdp(cudnn)
        runner, report = _captured(fm, slots, compiled=True)
        with torch.inference_mode():
            for size in (1, 8, 32, 64):
                if size <= slots:
                    seconds = _time(partial(runner.step, size, 200), 50)
                    report[f"b{size}_step_ms"] = round(seconds * 1000, 3)
        if cudnn:  # each choice its own new shapes (lengths no other run used), twice
            for n, (which, prefill) in enumerate(choices.items()):
                report[f"prefill_{which}_ms"] = {
                    f"{count}x{length}": [_prefill_ms(runner, prefill, count, length)
                                          for _ in range(2)]
                    for count, length in ((1, 33 + n), (11, 373 + n))
                }  # fmt: skip
        _save(out, f"attention_{name}", report)
        del runner
        gc.collect()
        torch.cuda.empty_cache()
    torch.backends.cuda.enable_cudnn_sdp(True)


KINDS = {  # kernel-name fragments, the first match wins
    "attention": ("flash", "fmha", "attention", "cudnn"),
    "sort": ("sort", "radix"),
    "scan": ("scan", "cumsum"),
    "matmul": ("gemm", "nvjet", "cutlass", "sm90_", "splitk"),
    "inductor": ("triton",),
    "softmax/reduce": ("softmax", "reduce"),
    "index/copy": ("index", "scatter", "gather", "copy", "elementwise", "fill", "cat"),
}


def _kind(name: str) -> str:
    lowered = name.lower()
    return next((k for k, parts in KINDS.items() if any(p in lowered for p in parts)), "other")


def _traced(run: Callable[[], Any], repeat: int) -> dict[str, Any]:
    """A replayed step's kernels (CUPTI), per step: time by kind, the costliest, the gaps."""
    from torch.profiler import ProfilerActivity, profile

    run()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(repeat):
            run()
            torch.cuda.synchronize()
    kernels = [e for e in prof.events() if e.device_type.name == "CUDA"]
    spans = sorted((e.time_range.start, e.time_range.end) for e in kernels)
    busy = sum(end - start for start, end in spans)
    # Per step: the wall from a replay's first kernel to its last, less the kernels' time.
    per_step = len(spans) // repeat
    walls = [spans[i * per_step + per_step - 1][1] - spans[i * per_step][0] for i in range(repeat)]
    by_kind: dict[str, list[float]] = {}
    by_name: dict[str, list[float]] = {}
    for e in kernels:
        us = e.time_range.elapsed_us()
        for table, key in ((by_kind, _kind(e.name)), (by_name, e.name[:90])):
            entry = table.setdefault(key, [0, 0.0])
            entry[0] += 1
            entry[1] += us

    def per(table: dict[str, list[float]]) -> dict[str, dict[str, float]]:
        ranked = sorted(table.items(), key=lambda kv: -kv[1][1])
        return {k: {"kernels": v[0] / repeat, "us": round(v[1] / repeat, 1)} for k, v in ranked}

    costliest = dict(list(per(by_name).items())[:20])
    return {
        "kernels": len(kernels) / repeat,
        "kernel_us": round(busy / repeat, 1),
        "span_us": round(statistics.median(walls), 1),
        "gaps_us": round(statistics.median(walls) - busy / repeat, 1),
        "by_kind": per(by_kind),
        "costliest": costliest,
    }


def kernels_part(fm: Any, out: Path, slots: int) -> None:
    runner, _ = _captured(fm, slots, compiled=True)
    _fill(runner)
    with torch.inference_mode():
        for size in (1, 64):
            if size <= slots:
                _save(out, f"kernels_b{size}", _traced(partial(runner.step, size, 200), 5))
    del runner
    gc.collect()
    torch.cuda.empty_cache()


def codec_part(fm: Any, out: Path, shapes: list[tuple[int, int]]) -> None:
    from worker.engines.fish._compat import no_kernel_tuning

    codec = fm.codec
    codebooks = fm.model.config.num_codebooks
    stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]
    no_kernel_tuning()

    def measure(
        name: str,
        decoder: Callable[[torch.Tensor], torch.Tensor],
        sizes: list[tuple[int, int]],
        split: bool = False,
    ) -> None:
        report: dict[str, Any] = {}
        for batch, frames in sizes:
            codes = torch.randint(0, 1024, (batch, codebooks, frames), device="cuda")
            with torch.cuda.stream(stream), torch.autocast("cuda", torch.bfloat16), \
                    torch.inference_mode():  # fmt: skip
                torch.cuda.reset_peak_memory_stats()
                started = time.perf_counter()
                decoder(codec.quantizer.decode(codes))
                torch.cuda.synchronize()
                first = time.perf_counter() - started
                whole = _time(partial(_decode, codec, decoder, codes), 3)
                entry = {
                    "audio_s_per_s": round(batch * frames / FRAME_RATE / whole, 1),
                    "ms": round(whole * 1000, 2),
                    "first_call_s": round(first, 2),
                    "peak_gb": round(torch.cuda.max_memory_allocated() / 1e9, 1),
                }
                if split:
                    quantizer = _time(partial(codec.quantizer.decode, codes), 3)
                    entry["quantizer_ms"] = round(quantizer * 1000, 2)
                report[f"b{batch}x{frames}"] = entry
                print(name, batch, frames, entry, flush=True)
        _save(out, f"codec_{name}", report)

    measure("eager", codec.decoder, shapes, split=True)
    torch.backends.cudnn.benchmark = True
    measure("eager_cudnn_benchmark", codec.decoder, shapes)
    torch.backends.cudnn.benchmark = False
    measure("compiled_dynamic", torch.compile(codec.decoder, dynamic=True), shapes)
    measure("compiled_static", torch.compile(codec.decoder, dynamic=False), shapes[1:2])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/fish-bench"))
    parser.add_argument("--out", type=Path, default=Path("probe.json"))
    parser.add_argument("--parts", default="step,codec")
    parser.add_argument("--slots", type=int, default=64)
    parser.add_argument("--shapes", default="1x256,8x256,16x256,4x512,8x512")
    args = parser.parse_args()
    from bench.fish_checkpoint import build
    from worker.engines.fish.model import FishModel, FishOptions, use_compile_cache

    use_compile_cache(args.work / "compile-cache")
    checkpoint = args.work / "s1-mini"
    if not (checkpoint / "codec.pth").exists():
        started = time.perf_counter()
        build(checkpoint, "s1-mini", device="cuda")
        _save(args.out, "build_s", round(time.perf_counter() - started, 1))
    started = time.perf_counter()
    fm = FishModel.load(FishOptions(checkpoint, device="cuda", compile=True))
    _save(args.out, "load_s", round(time.perf_counter() - started, 1))
    _save(args.out, "env", {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(),
                            "cache": os.environ.get("TORCHINDUCTOR_CACHE_DIR")})  # fmt: skip
    parts = args.parts.split(",")
    if "step" in parts:
        step_part(fm, args.out, args.slots)
    if "attention" in parts:
        attention_part(fm, args.out, args.slots)
    if "kernels" in parts:
        kernels_part(fm, args.out, args.slots)
    if "codec" in parts:
        shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
        codec_part(fm, args.out, shapes)  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
