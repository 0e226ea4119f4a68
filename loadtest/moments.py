"""The moments of a scale-out, read from `shoal watch`'s CSV.

- demand: the first sample whose outstanding work (waiting + running, what the
  ScaledObject's formula counts) is more than the warm minimum serves (min
  replicas x target per worker): the spike arrives.
- peak: the first sample with the most ready workers.
- calm: the sample after the last one whose demand exceeded the minimum: the
  queue is drained to what the minimum carries.
- drained: the first sample after calm with desired, current and ready all back
  at the minimum.
scale_out_s = peak - demand; drain_s = drained - calm (how long the extra
workers outlived the demand: stabilization, policies and warm shutdowns).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Moments:
    start: float  # Unix time of the first sample
    min_replicas: int
    max_replicas: int  # the most ready workers seen
    demand: float | None  # seconds since start
    peak: float | None
    calm: float | None
    drained: float | None

    @property
    def scale_out_s(self) -> float | None:
        return None if self.demand is None or self.peak is None else self.peak - self.demand

    @property
    def drain_s(self) -> float | None:
        return None if self.calm is None or self.drained is None else self.drained - self.calm


def _number(row: dict[str, str], key: str) -> float | None:
    value = row.get(key, "")
    return float(value) if value not in ("", None) else None


def _ready(row: dict[str, str]) -> int:
    """Ready workers as the autoscaler counts them, else the workers heartbeating."""
    value = _number(row, "ready")
    return int(value) if value is not None else int(row["workers"])


def moments(rows: list[dict[str, str]]) -> Moments:
    if not rows:
        raise ValueError("the watch CSV has no samples")
    start = float(rows[0]["time"])
    t = [float(r["time"]) - start for r in rows]
    ready = [_ready(r) for r in rows]
    floor = next(
        (int(v) for r in rows if (v := _number(r, "min_replicas")) is not None), min(ready)
    )
    target = next((v for r in rows if (v := _number(r, "target")) is not None), 1.0)
    # The formula KEDA reads, from the watch's own sample (fresher than the autoscaler's).
    demand = [float(r["waiting"]) + float(r["running"]) for r in rows]
    over = [i for i, d in enumerate(demand) if d > floor * target]
    top = max(ready)
    peak_index = ready.index(top) if top > floor else None
    calm_index = over[-1] + 1 if over and over[-1] + 1 < len(rows) else None
    drained_index = None
    if calm_index is not None:
        for i in range(calm_index, len(rows)):
            pool = [_number(rows[i], k) for k in ("desired", "current")] + [ready[i]]
            if all(v == floor for v in pool if v is not None):
                drained_index = i
                break
    return Moments(
        start=start,
        min_replicas=floor,
        max_replicas=top,
        demand=t[over[0]] if over else None,
        peak=None if peak_index is None else t[peak_index],
        calm=None if calm_index is None else t[calm_index],
        drained=None if drained_index is None else t[drained_index],
    )
