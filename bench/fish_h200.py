"""Fish Speech on one GPU: the batching engine's speed, start-up and memory, and end to end.

Random weights of the real S1-mini shape (0.7 B language model + 0.39 B codec,
built by bench/fish_checkpoint.py; end of speech unreachable, so a job makes
exactly the frames it asks for). Every figure goes through the engine a worker
runs (FishSpeechEngine: continuous batching, codec included), and the batch-1
baseline is measured in the same run, on the same worker.

On a bare GPU machine, from a checkout of the repository:

    pip install '.[fish]' && pip install --no-deps -r requirements-fish-nodeps.txt
    python bench/fish_h200.py all --work /tmp/fish-bench

Steps (`all` runs them in order; each adds to DIR/results.json; `table` prints it):

    build     random S1-mini weights into DIR (once)
    cold      a worker's start on an empty compile cache (DIR/compile-cache)
    warm      a second start on that cache, then the engine's figures
    pipeline  `shoal up` with the fish-speech engine, driven by concurrent submits
    profile   (not in `all`) where the time goes: kernels per CUDA stream, batch occupancy
    admission (not in `all`) what admitting newcomers costs: by shape, under GIL contention

    python bench/fish_h200.py all --work /tmp/fish-bench --size tiny --device cpu  # smoke run

Start times are measured from before the worker-like child process is spawned
until it is ready to take a job. A step that fails makes the command fail.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/fish_h200.py` from anywhere
    sys.path.insert(0, str(ROOT))


DUMP_STACKS_AFTER = "SHOAL_BENCH_DUMP_STACKS_AFTER"  # seconds: the child's hang report
SPAWNED_AT = "SHOAL_BENCH_SPAWNED_AT"  # the parent's clock (epoch seconds) at the spawn


class StepFailed(RuntimeError):
    pass


def _results(work: Path) -> dict[str, Any]:
    path = work / "results.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _save(work: Path, **entries: Any) -> None:
    results = _results(work)
    results.update(entries)
    (work / "results.json").write_text(json.dumps(results, indent=2))


def child_env(work: Path, size: str, device: str, **extra: str) -> dict[str, str]:
    """The environment of a worker on the benchmark's checkpoint, with the project importable."""
    checkpoint = work / size
    path = os.environ.get("PYTHONPATH", "")
    return {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "SHOAL_FISH_CHECKPOINT": str(checkpoint),
        "SHOAL_FISH_CODEC_CONFIG": str(checkpoint / "codec.yaml")
        if size == "tiny"
        else "modded_dac_vq",
        "SHOAL_FISH_DEVICE": device,
        "SHOAL_FISH_COMPILE_CACHE_DIR": str(work / "compile-cache"),
        "SHOAL_LOG_LEVEL": "WARNING",
        **extra,
    }


def build(work: Path, size: str, device: str) -> None:
    from bench.fish_checkpoint import build as build_checkpoint

    started = time.perf_counter()
    build_checkpoint(work / size, size, device=device)
    _save(work, build_seconds=round(time.perf_counter() - started, 1))


def _child(work: Path, env: dict[str, str], bench: str | None, timeout: float) -> dict[str, Any]:
    """Run `serve` in a fresh process; its ready time is taken from before the spawn.

    A child still running after `timeout` seconds is killed, whether it prints or not;
    a little before that it prints every thread's stack (a hang shows where it is).
    """
    started = time.perf_counter()
    argv = [sys.executable, "-m", "bench.fish_h200", "serve", "--work", str(work)]
    env = {**env, DUMP_STACKS_AFTER: str(max(timeout - 15, 1)), SPAWNED_AT: str(time.time())}
    process = subprocess.Popen(
        [*argv, *(["--bench", bench] if bench else [])],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        process.kill()

    watchdog = threading.Timer(timeout, kill)
    watchdog.start()
    ready = None
    report: dict[str, Any] = {}
    try:
        for line in process.stdout:
            if line.startswith("READY") and ready is None:
                ready = time.perf_counter() - started
            elif line.startswith("PART "):
                report.update(json.loads(line[5:]))
            elif line.startswith("WAVE"):
                print(line.rstrip(), flush=True)
        process.wait()
    finally:
        watchdog.cancel()
    if killed.is_set():
        report["killed_after_s"] = timeout
    report["ready_seconds"] = None if ready is None else round(ready, 1)
    report["exit_code"] = process.returncode
    errors = [key for key in report if key.startswith("failed:")]
    if process.returncode != 0 or ready is None or "killed_after_s" in report or errors:
        _save(work, **{f"failed_{bench or 'start'}": report})
        raise StepFailed(f"the worker exited {process.returncode} (ready: {ready}): {report}")
    return report


def cold(work: Path, size: str, device: str, timeout: float | None) -> None:
    shutil.rmtree(work / "compile-cache", ignore_errors=True)
    env = child_env(work, size, device)
    _save(work, cold_start=_child(work, env, None, timeout=timeout or 300))


def warm(work: Path, size: str, device: str, timeout: float | None) -> None:
    env = child_env(work, size, device)
    _save(work, warm_start=_child(work, env, "full", timeout=timeout or 900))


def profile(work: Path, size: str, device: str, timeout: float | None) -> None:
    env = child_env(work, size, device)
    _save(work, profile=_child(work, env, "profile", timeout=timeout or 600))


def admission(work: Path, size: str, device: str, timeout: float | None) -> None:
    env = child_env(work, size, device)
    _save(work, admission=_child(work, env, "admission", timeout=timeout or 600))


def pipeline(work: Path, size: str, device: str, jobs: int, seconds: float) -> None:
    from bench.fish_pipeline import run_pipeline

    env = child_env(work, size, device, SHOAL_DATA_DIR=str(work / "stack"))
    _save(work, pipeline=run_pipeline(env, jobs, ROOT, seconds))


def serve(bench: str | None) -> None:
    if DUMP_STACKS_AFTER in os.environ:
        faulthandler.dump_traceback_later(float(os.environ[DUMP_STACKS_AFTER]))
    from bench.fish_serve import serve as serve_engine
    from shoal.settings import get_settings

    spawned_at = os.environ.get(SPAWNED_AT)
    serve_engine(get_settings(), bench, float(spawned_at) if spawned_at else None)


def table(work: Path) -> None:
    r = _results(work)
    c, w, p = r.get("cold_start", {}), r.get("warm_start", {}), r.get("pipeline", {})
    rows: list[tuple[str, Any]] = [
        ("GPU / torch", f"{w.get('gpu')} / {w.get('torch')}"),
        (
            "slots (batch) / context / KV cache GB",
            f"{w.get('slots')} / {w.get('context')} / {w.get('kv_cache_gb')}",
        ),
        ("ready after start, empty compile cache (s)", c.get("ready_seconds")),
        ("ready after start, warm compile cache (s)", w.get("ready_seconds")),
        ("codec compiled", w.get("codec_compiled")),
    ]
    for name, wave in w.get("waves", {}).items():
        rows.append((f"{name}: frames/s, per stream x real time, peak GB, GPU %", (
            wave["frames_per_s"], wave["per_stream_x_real_time"], wave["peak_gb"],
            wave.get("gpu_util_pct"),
        )))  # fmt: skip
    for name, lm in w.get("lm_only", {}).items():
        rows.append(
            (f"decode step alone {name}: ms, frames/s", (lm["step_ms"], lm["frames_per_s"]))
        )
    rows += [
        ("codec alone (audio s per s)", w.get("codec_only")),
        ("jobs per GPU-hour (mix, 200 jobs)", w.get("jobs_per_gpu_hour")),
        ("jobs per GPU-hour (the mix three times, 600 jobs)", w.get("mix_x3_jobs_per_gpu_hour")),
        ("ready: start-up phases (s)", w.get("startup_phases")),
        (f"allocated GB at jobs {w.get('memory_at_jobs')}", w.get("allocated_gb")),
        ("reserved GB at the same jobs", w.get("reserved_gb")),
        ("same seed same audio / in a full batch", _pair(w, "same_seed_same_audio",
                                                         "alone_vs_in_full_batch_identical")),
        ("job under OOM fails with / next succeeds", _pair(w, "oom_job_error",
                                                           "next_job_after_oom_ok")),
        ("pipeline jobs/s", p.get("jobs_per_second")),
        ("pipeline time to audio p50 / p95 (s)", _pair(p, "time_to_audio_p50_s",
                                                       "time_to_audio_p95_s")),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def _pair(results: dict[str, Any], first: str, second: str) -> tuple[Any, Any]:
    return results.get(first), results.get(second)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    steps = ["build", "cold", "warm", "pipeline", "profile", "admission", "all", "table", "serve"]
    parser.add_argument("step", choices=steps)
    parser.add_argument("--work", type=Path, default=Path("/tmp/fish-bench"))
    parser.add_argument("--bench", choices=["full", "profile", "admission"])
    parser.add_argument("--size", choices=["s1-mini", "tiny"], default="s1-mini")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--jobs", type=int, default=256, help="pipeline: jobs of the burst")
    parser.add_argument(
        "--timeout", type=float, help="cold, warm, profile, admission: kill the worker after (s)"
    )
    parser.add_argument("--steady-seconds", type=float, default=40, help="pipeline: steady phase")
    args = parser.parse_args()
    if args.step == "serve":
        serve(args.bench)
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    failed = []
    if args.step != "table" and not (args.work / args.size / "codec.pth").exists():
        build(args.work, args.size, args.device)
    for step in ("cold", "warm", "pipeline", "profile", "admission"):
        if args.step != step and (args.step != "all" or step in ("profile", "admission")):
            continue
        try:
            if step == "pipeline":
                pipeline(args.work, args.size, args.device, args.jobs, args.steady_seconds)
            else:
                runs = {"cold": cold, "warm": warm, "profile": profile, "admission": admission}
                runs[step](args.work, args.size, args.device, args.timeout)
        except Exception as exc:
            print(f"step {step} failed: {exc}", file=sys.stderr, flush=True)
            _save(args.work, **{f"{step}_error": str(exc)})
            failed.append(step)
    table(args.work)
    if failed:
        print(f"failed steps: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
