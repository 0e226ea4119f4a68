"""Fish Speech on one GPU: speed, start-up and memory of shoal's fish-speech engine.

Random weights of the real S1-mini shape (0.7 B language model + 0.39 B codec,
built by worker.engines.fish_random_checkpoint; end of speech unreachable, so a
request makes exactly the frames asked for). Every figure goes through the
engine a worker runs: shoal's decode loop over fish-speech 0.1.0's decode step,
codec decode included.

    python bench/fish_h200.py build --work DIR          # the checkpoint (once)
    python bench/fish_h200.py cold --work DIR    # compiled start on an empty cache
    python bench/fish_h200.py warm --work DIR    # compiled start on that cache, then its figures
    python bench/fish_h200.py speed --work DIR   # eager figures
    python bench/fish_h200.py all --work DIR            # all four, then the table
    python bench/fish_h200.py all --work DIR --size tiny --device cpu   # a smoke run

Each step adds to DIR/results.json; `table` prints it. Start times are measured
from before the worker-like child process is spawned until it is ready (model
loaded, decode step compiled and warmed up), exactly what a worker does before
it consumes; the compile cache lives in DIR/compile-cache, as on a shared volume.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

FRAME_RATE = 44100 / 2048  # semantic frames per second of audio
TEXT = (
    "The committee will meet on Thursday to review the budget, and every department "
    "head should bring a one page summary of spending, hiring plans and the risks they "
    "see for the coming quarter, so that decisions can be made quickly."
)  # 40 words
MIX = [  # (share of jobs, characters): notifications, paragraphs, articles
    (0.5, 60),
    (0.35, 250),
    (0.15, 900),
]
CHARS_PER_SECOND = 15.0  # read-aloud English, to size each job's audio


def _results(work: Path) -> dict[str, Any]:
    path = work / "results.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _save(work: Path, **entries: Any) -> None:
    results = _results(work)
    results.update(entries)
    (work / "results.json").write_text(json.dumps(results, indent=2))


SIZE = os.environ.get("FISH_BENCH_SIZE", "s1-mini")
DEVICE = os.environ.get("FISH_BENCH_DEVICE", "cuda")


def _cuda() -> bool:
    return DEVICE == "cuda"


def build(work: Path) -> None:
    from worker.engines.fish_random_checkpoint import build as build_checkpoint

    started = time.perf_counter()
    build_checkpoint(work / SIZE, SIZE, device=DEVICE)
    _save(work, build_seconds=round(time.perf_counter() - started, 1))


def _child(work: Path, *flags: str, timeout: float) -> dict[str, Any]:
    """Run `serve` in a fresh process; its ready time is taken from before the spawn."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, __file__, "serve", "--work", str(work), *flags],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    ready = None
    report: dict[str, Any] = {}
    deadline = started + timeout
    for line in process.stdout:
        if line.startswith("READY") and ready is None:
            ready = time.perf_counter() - started
        elif line.startswith("REPORT "):
            report = json.loads(line[7:])
        if time.perf_counter() > deadline:
            process.kill()
            report["killed_after_s"] = timeout
            break
    process.wait()
    report["ready_seconds"] = None if ready is None else round(ready, 1)
    report["exit_code"] = process.returncode
    return report


def cold(work: Path) -> None:
    cache = work / "compile-cache"
    _save(work, cold_cache_existed=cache.exists())
    _save(work, cold_start=_child(work, "--compile", timeout=450))


def warm(work: Path) -> None:
    """A second compiled worker on the now warm cache; it then runs the compiled figures."""
    _save(work, compiled=_child(work, "--compile", "--bench", "compiled", timeout=420))


def recheck(work: Path) -> None:
    _save(work, recheck=_child(work, "--compile", "--bench", "recheck", timeout=300))


def speed(work: Path) -> None:
    _save(work, eager=_child(work, "--bench", "eager", timeout=240))


def serve(work: Path, compile: bool, bench: str | None) -> None:
    started = time.perf_counter()
    import torch

    from worker.engines.fish_model import FishModel, FishOptions
    from worker.engines.fish_speech import FishSpeechEngine

    imported = time.perf_counter()
    checkpoint = work / SIZE
    model = FishModel.load(
        FishOptions(
            checkpoint=checkpoint,
            codec_config=str(checkpoint / "codec.yaml") if SIZE == "tiny" else "modded_dac_vq",
            device=DEVICE,  # type: ignore[arg-type]
            precision="bf16",
            compile=compile,
            compile_cache_dir=work / "compile-cache",
        )
    )
    loaded = time.perf_counter()
    engine = FishSpeechEngine(model)
    warmup = engine.warm_up()
    print("READY", flush=True)
    report: dict[str, Any] = {
        "import_seconds": round(imported - started, 1),
        "load_seconds": round(loaded - imported, 1),
        "warmup_seconds": round(warmup, 1),
        "allocated_after_load_gb": _gb(torch.cuda.memory_allocated) if _cuda() else None,
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if _cuda() else "cpu",
    }
    if bench == "recheck":
        report.update(_single_stream(engine, frames=512, runs=3))
        report.update(_out_of_memory(engine))
    if bench == "eager":
        report.update(_single_stream(engine, frames=128, runs=2))
    elif bench == "compiled":
        report.update(_single_stream(engine, frames=512, runs=3))
        report.update(_codec(engine))
        report.update(_determinism(engine))
        report.update(_mix(engine))
        report.update(_many_jobs(engine, jobs=200 if _cuda() else 20))
        if _cuda():
            report.update(_out_of_memory(engine))
    print("REPORT " + json.dumps(report), flush=True)


def _gb(measure: Any) -> float:
    return round(float(measure()) / 1e9, 3)


def _say(engine: Any, text: str, frames: int, seed: int = 1, chunk: int = 300) -> Any:
    """One job; TEXT (227 characters) stays one chunk at the default chunk length."""
    from shoal.jobs import EngineParams
    from worker.engines.base import SynthesisRequest

    params = EngineParams(max_new_tokens=frames, seed=seed, chunk_length=chunk)
    return engine.synthesize(SynthesisRequest(text, params=params))


def _single_stream(engine: Any, frames: int, runs: int) -> dict[str, Any]:
    import torch

    if _cuda():
        torch.cuda.reset_peak_memory_stats()
    _say(engine, TEXT, frames)  # one more warm run at this length
    times = []
    for run in range(runs):
        started = time.perf_counter()
        speech = _say(engine, TEXT, frames, seed=run)
        times.append(time.perf_counter() - started)
    seconds = sorted(times)[len(times) // 2]
    audio = speech.duration_seconds
    assert len(speech.samples) == frames * 2048, "TEXT must stay one chunk"
    return {
        "frames": frames,
        "runs_seconds": [round(t, 3) for t in times],
        "frames_per_second": round(frames / seconds, 1),
        "rtf": round(seconds / audio, 4),
        "peak_allocated_gb": _gb(torch.cuda.max_memory_allocated) if _cuda() else None,
    }


def _codec(engine: Any) -> dict[str, Any]:
    import torch

    config = engine.model.model.config
    size = min(1024, config.codebook_size)
    codes = torch.randint(0, size, (config.num_codebooks, 512), dtype=torch.int32)
    engine.model.decode(codes)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        engine.model.decode(codes)
        times.append(time.perf_counter() - started)
    reference = torch.randn(44100 * 10).numpy()
    engine.model.encode_reference(reference)
    started = time.perf_counter()
    engine.model.encode_reference(reference)
    return {
        "codec_decode_512_frames_seconds": round(sorted(times)[2], 4),
        "reference_encode_10s_seconds": round(time.perf_counter() - started, 4),
    }


def _determinism(engine: Any) -> dict[str, Any]:
    import numpy as np

    first = _say(engine, TEXT, 64, seed=7).samples
    again = _say(engine, TEXT, 64, seed=7).samples
    other = _say(engine, TEXT, 64, seed=8).samples
    return {
        "same_seed_same_audio": bool(np.array_equal(first, again)),
        "other_seed_other_audio": not bool(np.array_equal(first, other)),
    }


def _mix(engine: Any, jobs: int = 20) -> dict[str, Any]:
    """Jobs per GPU-hour for a text mix; each job's audio sized at CHARS_PER_SECOND."""
    words = (TEXT + " ") * 8
    plan = [chars for share, chars in MIX for _ in range(round(share * jobs))]
    busy = audio = 0.0
    for index, chars in enumerate(plan):
        text = words[:chars].rsplit(" ", 1)[0] + "."
        frames = math.ceil(min(chars, 200) / CHARS_PER_SECOND * FRAME_RATE)
        started = time.perf_counter()
        speech = _say(engine, text, frames, seed=index, chunk=200)
        busy += time.perf_counter() - started
        audio += speech.duration_seconds
    return {
        "mix_jobs": len(plan),
        "mix_audio_seconds": round(audio, 1),
        "mix_gpu_seconds": round(busy, 2),
        "jobs_per_gpu_hour": round(len(plan) / busy * 3600),
        "audio_hours_per_gpu_hour": round(audio / busy, 1),
    }


def _many_jobs(engine: Any, jobs: int) -> dict[str, Any]:
    import torch

    samples: dict[str, list[float]] = {"allocated_gb": [], "reserved_gb": []}
    checkpoints = {n for n in (1, 10, 50, 100, jobs // 2, jobs) if n <= jobs}
    started = time.perf_counter()
    for job in range(1, jobs + 1):
        _say(engine, TEXT[: 40 + (job * 37) % 200], 24 + job % 40, seed=job)
        if job in checkpoints and _cuda():
            samples["allocated_gb"].append(_gb(torch.cuda.memory_allocated))
            samples["reserved_gb"].append(_gb(torch.cuda.memory_reserved))
    return {
        "sequential_jobs": jobs,
        "sequential_jobs_seconds": round(time.perf_counter() - started, 1),
        "memory_at_jobs": sorted(checkpoints),
        **samples,
    }


def _out_of_memory(engine: Any) -> dict[str, Any]:
    import torch

    from shoal.errors import SynthesisError

    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info()
    hog = torch.empty(free - (64 << 20), dtype=torch.uint8, device="cuda")
    code = "no error"
    try:
        _say(engine, TEXT, 256)
    except SynthesisError as exc:
        code = exc.code
    del hog
    recovered = len(_say(engine, TEXT, 64).samples) == 64 * 2048
    return {"oom_job_error": code, "next_job_after_oom_ok": recovered}


def table(work: Path) -> None:
    r = _results(work)
    cold, warm = r.get("cold_start", {}), r.get("compiled", {})
    eager, comp = r.get("eager", {}), r.get("compiled", {})
    rows = [
        ("GPU / torch", f"{comp.get('gpu', eager.get('gpu'))} / {comp.get('torch')}"),
        ("checkpoint build (s)", r.get("build_seconds")),
        ("cold start, compiled (s)", cold.get("ready_seconds")),
        ("  of which warm-up/compile (s)", cold.get("warmup_seconds")),
        ("warm start, compiled (s)", warm.get("ready_seconds")),
        ("  of which warm-up/compile (s)", warm.get("warmup_seconds")),
        ("eager start (s)", eager.get("ready_seconds")),
        ("eager frames/s (128 frames)", eager.get("frames_per_second")),
        ("eager RTF", eager.get("rtf")),
        ("compiled frames/s (512 frames)", comp.get("frames_per_second")),
        ("compiled RTF", comp.get("rtf")),
        (
            "compiled / eager speed",
            _ratio(comp.get("frames_per_second"), eager.get("frames_per_second")),
        ),
        ("codec decode, 512 frames (s)", comp.get("codec_decode_512_frames_seconds")),
        ("reference encode, 10 s (s)", comp.get("reference_encode_10s_seconds")),
        ("allocated after load (GB)", comp.get("allocated_after_load_gb")),
        ("peak allocated, 512 frames (GB)", comp.get("peak_allocated_gb")),
        ("same seed, same audio", comp.get("same_seed_same_audio")),
        ("jobs per GPU-hour (mix)", comp.get("jobs_per_gpu_hour")),
        ("audio hours per GPU-hour (mix)", comp.get("audio_hours_per_gpu_hour")),
        (f"allocated GB at jobs {comp.get('memory_at_jobs')}", comp.get("allocated_gb")),
        ("reserved GB at the same jobs", comp.get("reserved_gb")),
        ("job under OOM fails with", comp.get("oom_job_error")),
        ("next job after OOM succeeds", comp.get("next_job_after_oom_ok")),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def _ratio(a: float | None, b: float | None) -> str | None:
    return f"{a / b:.1f}x" if a and b else None


def main() -> None:
    global SIZE, DEVICE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    steps = ["build", "cold", "warm", "speed", "recheck", "all", "table", "serve"]
    parser.add_argument("step", choices=steps)
    parser.add_argument("--work", type=Path, default=Path("/tmp/fish-bench"))
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--bench", choices=["eager", "compiled", "recheck"])
    parser.add_argument("--size", choices=["s1-mini", "tiny"], default=SIZE)
    parser.add_argument("--device", choices=["cuda", "cpu"], default=DEVICE)
    args = parser.parse_args()
    os.environ["FISH_BENCH_SIZE"], os.environ["FISH_BENCH_DEVICE"] = args.size, args.device
    SIZE, DEVICE = args.size, args.device
    args.work.mkdir(parents=True, exist_ok=True)
    if args.step == "serve":
        serve(args.work, args.compile, args.bench)
        return
    if args.step != "table" and not (args.work / SIZE / "codec.pth").exists():
        build(args.work)
    if args.step in ("cold", "all"):
        cold(args.work)
    if args.step in ("warm", "all"):
        warm(args.work)
    if args.step in ("speed", "all"):
        speed(args.work)
    if args.step == "recheck":
        recheck(args.work)
    table(args.work)


if __name__ == "__main__":
    main()
