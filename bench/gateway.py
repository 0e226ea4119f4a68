"""Submit throughput of POST /v1/jobs on one uvicorn process, against baselines.

    python -m bench.gateway [--seconds 8] [--rounds 3] [--connections 32]

In the same run on the same machine: (a) a no-op route of the same app, the
ceiling; (b) the naive design, a sync route calling Celery's `.delay()`. The
load generator is wrk (C, one thread, keep-alive), so the server is the
bottleneck. Rounds interleave the three targets and medians are reported,
because machines this small are noisy: read the ratios.
"""

from __future__ import annotations

import argparse

import redis

from bench.common import WrkResult, backends, machine, median, process_env, save, server, table, wrk
from shoal import keys
from worker.engines.tone import ToneEngine

BODY = '{"text": "Hello from the benchmark, with a sentence of ordinary length.", "format": "mp3"}'
SHOAL, CEILING, NAIVE = "shoal POST /v1/jobs", "no-op route (ceiling)", "naive sync + .delay()"
TARGETS = {
    SHOAL: ("bench.apps:shoal_with_noop", "/v1/jobs"),
    CEILING: ("bench.apps:shoal_with_noop", "/bench/noop"),
    "validate-only route": ("bench.apps:shoal_with_noop", "/bench/validate"),
    NAIVE: ("bench.apps:naive", "/v1/jobs"),
}


def run(seconds: int, rounds: int, connections: int) -> dict[str, list[WrkResult]]:
    results: dict[str, list[WrkResult]] = {name: [] for name in TARGETS}
    with backends() as services:
        client = redis.Redis.from_url(services.redis_url)
        # As if a worker had started: submit validates voices against this.
        client.set(keys.catalog("tone"), ToneEngine().catalog().model_dump_json())
        env = process_env(**services.env, SHOAL_ENGINE="tone")
        for round_number in range(rounds):
            for name, (app, path) in TARGETS.items():
                with server(app, env) as gateway:
                    wrk(gateway.url + path, BODY, 2, connections)  # warm-up
                    cpu_before = gateway.cpu_seconds()
                    result = wrk(gateway.url + path, BODY, seconds, connections)
                    result.server_cpu_ms = (
                        1000 * (gateway.cpu_seconds() - cpu_before) / result.requests
                    )
                results[name].append(result)
                print(f"round {round_number + 1}: {name}: {result.requests_per_second:,.0f} req/s")
                client.delete(keys.TTS_QUEUE, keys.QUEUED)  # keep Redis small between runs
        client.close()
    return results


def report(results: dict[str, list[WrkResult]]) -> dict[str, float]:
    rate = {name: median([r.requests_per_second for r in rs]) for name, rs in results.items()}
    cpu = {name: median([r.server_cpu_ms for r in rs]) for name, rs in results.items()}
    rows = [
        [
            name, rate[name], cpu[name],
            median([r.p50_ms for r in rs]), median([r.p90_ms for r in rs]),
            median([r.p99_ms for r in rs]), sum(r.errors for r in rs),
            rate[name] / rate[CEILING], rate[name] / rate[NAIVE],
        ]
        for name, rs in results.items()
    ]  # fmt: skip
    print()
    print(f"gateway submit, one uvicorn process ({machine()})")
    headers = ["target", "req/s", "CPU ms/req", "p50 ms", "p90 ms", "p99 ms", "errors"]
    print(table([*headers, "/ceiling", "/naive"], rows))
    ratios = {
        "vs_ceiling": rate[SHOAL] / rate[CEILING],
        "vs_naive": rate[SHOAL] / rate[NAIVE],
        "cpu_vs_ceiling": cpu[CEILING] / cpu[SHOAL],
        "cpu_vs_naive": cpu[NAIVE] / cpu[SHOAL],
    }
    print(
        f"\nshoal = {ratios['vs_ceiling']:.0%} of the no-op ceiling (target >= 50 %), "
        f"{ratios['vs_naive']:.1f}x the naive design (target >= 2x); by server CPU per "
        f"request: {ratios['cpu_vs_ceiling']:.0%} and {ratios['cpu_vs_naive']:.1f}x"
    )
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    results = run(args.seconds, args.rounds, args.connections)
    ratios = report(results)
    runs = {name: [vars(r) for r in rs] for name, rs in results.items()}
    path = save("gateway", {"args": vars(args), "ratios": ratios, "results": runs})
    print(f"saved {path}")


if __name__ == "__main__":
    main()
