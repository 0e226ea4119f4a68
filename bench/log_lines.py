"""What one structured log line costs the gateway, by level and format.

    python -m bench.log_lines [--lines 20000] [--rounds 5]

The gateway logs two lines per submit (`request`, `job queued`) at INFO. Each
line is timed with the logging set up as the gateway sets it up, written to
/dev/null; the baseline is a line below the level (dropped first thing) in the
same run. Medians of the rounds are shown.
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit
from typing import TextIO

import structlog

from bench.common import median
from shoal.logs import configure_logging, get_logger
from shoal.settings import Settings

CASES = (("WARNING", "json"), ("INFO", "json"), ("INFO", "console"))


def per_line_us(level: str, fmt: str, lines: int, sink: TextIO) -> float:
    sys.stderr = sink  # the handler binds sys.stderr when it is made
    settings = Settings.model_validate({"log_level": level, "log_format": fmt})
    configure_logging(settings, component="gateway")
    log = get_logger(f"bench.{level}.{fmt}")
    structlog.contextvars.bind_contextvars(request_id="0" * 32)

    def line() -> None:
        log.info("request", method="POST", route="/v1/jobs", path="/v1/jobs", status=202, ms=1.2)

    seconds = timeit.timeit(line, number=lines)
    sys.stderr = sys.__stderr__
    return seconds / lines * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with open(os.devnull, "w") as sink:
        results = {
            case: median([per_line_us(*case, args.lines, sink) for _ in range(args.rounds)])
            for case in CASES
        }
    baseline = results[CASES[0]]
    print("level   | format  | us per line | x dropped line")
    for (level, fmt), us in results.items():
        print(f"{level:<7} | {fmt:<7} | {us:11.1f} | {us / baseline:6.1f}")
    if not all(us > 0 for us in results.values()):
        raise SystemExit("a case measured nothing")


if __name__ == "__main__":
    main()
