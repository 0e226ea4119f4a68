"""`shoal watch`: the queue, the pool and time to audio, sampled into a live view and a CSV.

Every `interval` it reads `GET /v1/queue` (waiting and running jobs, workers,
completions and time-to-audio percentiles of the last `window` seconds, and
the local autoscaler's replicas) and, with a ClusterReader, the replicas of
the worker Deployment, its HPA and the ScaledObject. One CSV row per sample,
flushed as it is taken, so a run cut short still has its history.
"""

from __future__ import annotations

import csv
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import IO, Any

import httpx
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from loadtest.cluster import ClusterReader, ClusterUnavailable
from shoal import keys

SPARKS = " ▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class Sample:
    time: float  # Unix seconds
    waiting: int
    running: int
    oldest_waiting_s: float
    workers: int  # synthesis workers heartbeating
    desired: int | None
    current: int | None
    ready: int | None
    min_replicas: int | None
    max_replicas: int | None
    metric: float | None
    target: float | None  # the metric per worker the autoscaler aims at
    active: bool | None
    completions_per_s: float
    tta_p50_s: float | None
    tta_p95_s: float | None
    source: str  # "local" (shoal up --autoscale), "kubernetes", or "" (no autoscaler seen)


COLUMNS = [f.name for f in fields(Sample)]


class Sampler:
    def __init__(
        self,
        http: httpx.Client,
        window: float = 30.0,
        cluster: ClusterReader | None = None,
    ) -> None:
        self.http, self.window, self.cluster = http, window, cluster

    def sample(self) -> Sample:
        response = self.http.get("/v1/queue", params={"window": self.window})
        response.raise_for_status()
        state: dict[str, Any] = response.json()
        tts = state["queues"][keys.TTS_QUEUE]
        recent = state["recent"]
        pool: dict[str, Any] = {}
        source = ""
        if self.cluster is not None:
            pool, source = asdict(self.cluster.read()), "kubernetes"
        elif state.get("autoscaler"):
            pool, source = state["autoscaler"], "local"
        return Sample(
            time=round(time.time(), 3),
            waiting=tts["waiting"],
            running=tts["running"],
            oldest_waiting_s=state["oldest_waiting_seconds"],
            workers=sum(keys.TTS_QUEUE in w["queues"] for w in state["workers"]),
            desired=pool.get("desired"),
            current=pool.get("current"),
            ready=pool.get("ready"),
            min_replicas=pool.get("min_replicas"),
            max_replicas=pool.get("max_replicas"),
            metric=pool.get("metric"),
            target=pool.get("target"),
            active=pool.get("active"),
            completions_per_s=recent["completions_per_second"],
            tta_p50_s=recent["time_to_audio_p50_seconds"],
            tta_p95_s=recent["time_to_audio_p95_seconds"],
            source=source,
        )


class CsvLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file: IO[str] = path.open("w", newline="")
        self.writer = csv.DictWriter(self.file, COLUMNS)
        self.writer.writeheader()

    def write(self, sample: Sample) -> None:
        self.writer.writerow({k: "" if v is None else v for k, v in asdict(sample).items()})
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def sparkline(values: Sequence[float]) -> str:
    top = max(values, default=0) or 1
    return "".join(SPARKS[round(v / top * (len(SPARKS) - 1))] for v in values)


def _value(value: object, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}{unit}"
    return f"{value}{unit}"


def render(history: deque[Sample]) -> Group:
    last = history[-1]
    table = Table(title="shoal watch", show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column()
    queue = [s.waiting for s in history]
    ready = [float(s.ready if s.ready is not None else s.workers) for s in history]
    table.add_row("waiting", _value(last.waiting), Text(sparkline(queue), style="yellow"))
    table.add_row("running", _value(last.running), "")
    replicas = f"{_value(last.desired)} / {_value(last.current)} / {_value(last.ready)}"
    table.add_row("replicas desired/current/ready", replicas, Text(sparkline(ready), style="cyan"))
    table.add_row("bounds", f"{_value(last.min_replicas)}-{_value(last.max_replicas)}", "")
    table.add_row("metric (waiting + running)", _value(last.metric), "")
    table.add_row("completions", _value(last.completions_per_s, "/s"), "")
    tta = f"{_value(last.tta_p50_s, ' s')} / {_value(last.tta_p95_s, ' s')}"
    table.add_row("time to audio p50/p95", tta, "")
    source = last.source or "no autoscaler reported"
    return Group(table, Text(f"replicas from: {source}", style="dim"))


def watch(
    sampler: Sampler,
    interval: float,
    csv_path: Path | None,
    duration: float | None = None,
    live: bool = True,
    stop: Callable[[], bool] = lambda: False,
    on_error: Callable[[Exception], None] = lambda exc: None,
) -> int:
    """Sample until `duration` passes or `stop()` says so; the samples taken."""
    log = CsvLog(csv_path) if csv_path else None
    history: deque[Sample] = deque(maxlen=60)
    ends = time.monotonic() + duration if duration else float("inf")
    taken = 0
    view = Live(auto_refresh=False, transient=False) if live else None
    try:
        if view is not None:
            view.start()
        while not stop() and time.monotonic() < ends:
            started = time.monotonic()
            try:
                sample = sampler.sample()
            except (httpx.HTTPError, OSError, ClusterUnavailable) as exc:
                on_error(exc)
            else:
                taken += 1
                history.append(sample)
                if log is not None:
                    log.write(sample)
                if view is not None:
                    view.update(render(history), refresh=True)
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    finally:
        if view is not None:
            view.stop()
        if log is not None:
            log.close()
    return taken
