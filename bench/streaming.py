"""Time to first audio, streamed, against time to the whole file, over the same queue.

    python -m bench.streaming [--rounds 5] [--rtf 0.1]

One gateway and one espeak worker slowed to a GPU-like real-time factor
(`SHOAL_EMULATE_RTF`, default 0.1: about compiled Fish Speech on one H200), a
private Redis and SeaweedFS. For each text, rounds interleave three requests:

- whole file (baseline): `POST /v1/audio/speech` without `stream_format`, timed
  to the last byte;
- streamed (OpenAI): the same with `stream_format: "audio"`, timed to the first
  byte and to the last;
- streamed (Fish Speech): `POST /v1/tts` with `streaming: true` (msgpack), the same.

Medians are shown. A request that fails stops the benchmark with a non-zero exit.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import msgpack
import redis

from bench.common import backends, machine, median, process_env, save, server, table
from bench.pipeline import wait_workers, workers

SENTENCES = [
    "The harbour was quiet before dawn, and the first boats slipped out one by one.",
    "Gulls followed them past the lighthouse, calling over the slow grey water.",
    "By noon the wind had turned, and the sea began to rise against the rocks.",
    "The sailors reefed their sails and steered for the shelter of the northern bay.",
    "When evening came the storm had passed, leaving a sky washed clean and bright.",
    "One by one the boats came home, their lanterns swinging above the quay.",
]
TEXTS = {"one sentence": SENTENCES[0], "paragraph (6)": " ".join(SENTENCES)}
TEXTS["long (18)"] = " ".join(SENTENCES * 3)


def timed(http: httpx.Client, kind: str, text: str) -> tuple[float, float, int]:
    """(seconds to the first audio byte, seconds to the last, bytes) of one request."""
    if kind == "fish":
        body = msgpack.packb({"text": text, "format": "wav", "streaming": True})
        request = http.build_request(
            "POST", "/v1/tts", content=body, headers={"content-type": "application/msgpack"}
        )
    else:
        fields: dict[str, Any] = {"model": "tts-1", "voice": "alloy", "input": text}
        fields["response_format"] = "pcm"
        if kind == "openai":
            fields["stream_format"] = "audio"
        request = http.build_request("POST", "/v1/audio/speech", json=fields)
    started = time.perf_counter()
    response = http.send(request, stream=True)
    try:
        if response.status_code != 200:
            response.read()
            raise SystemExit(f"{kind}: {response.status_code} {response.text}")
        first, size = None, 0
        for chunk in response.iter_raw():
            if first is None and chunk:
                first = time.perf_counter() - started
            size += len(chunk)
        last = time.perf_counter() - started
    finally:
        response.close()
    assert first is not None and size > 0, f"{kind}: no audio"
    return first, last, size


def run(rounds: int, rtf: float) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    with backends() as services, ExitStack() as stack:
        env = process_env(**services.env, SHOAL_EMULATE_RTF=str(rtf))
        gateway = stack.enter_context(server("api.main:create_app", env))
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="shoal-bench-")))
        stack.enter_context(workers(1, env, log_dir))
        client = redis.Redis.from_url(services.redis_url)
        wait_workers(client, 1)
        with httpx.Client(base_url=gateway.url, timeout=600) as http:
            timed(http, "whole", "Warming up.")  # first-call costs out of the figures
            for name, text in TEXTS.items():
                samples: dict[str, list[float]] = {}
                for _ in range(rounds):
                    for kind in ("whole", "openai", "fish"):
                        first, last, _size = timed(http, kind, text)
                        samples.setdefault(f"{kind}_first", []).append(first)
                        samples.setdefault(f"{kind}_last", []).append(last)
                results[name] = {key: median(values) for key, values in samples.items()}
                print(f"{name}: {results[name]}")
        client.close()
    return results


def report(results: dict[str, dict[str, float]], rtf: float) -> None:
    print(f"\nstreaming, espeak at emulated RTF {rtf} ({machine()}); medians, seconds")
    rows = []
    for name, r in results.items():
        whole = r["whole_last"]
        rows.append([name, whole, r["openai_first"], r["openai_first"] / whole, r["openai_last"]])
        rows[-1] += [r["fish_first"], r["fish_first"] / whole, r["fish_last"]]
    headers = ["text", "whole file", "OpenAI first", "/whole", "OpenAI last"]
    print(table([*headers, "Fish first", "/whole", "Fish last"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rtf", type=float, default=0.1)
    args = parser.parse_args()
    results = run(args.rounds, args.rtf)
    report(results, args.rtf)
    print(f"saved {save('streaming', {'args': vars(args), 'results': results})}")


if __name__ == "__main__":
    main()
