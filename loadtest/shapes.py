"""Load shapes, as Locust LoadTestShape classes: steady, step, spike and day.

Each runs `seconds` long between a base and a peak number of users (every
user keeps one job in flight, so users are outstanding jobs) and then ends the
test. The locustfile runs the one `--shape` names; Locust itself would take the
first shape class it finds, so they live here, out of the locustfile's namespace.
"""

from __future__ import annotations

import math
from typing import ClassVar

from locust import LoadTestShape

# A weekday's traffic by hour (share of the peak hour): night trough, a morning
# ramp, a lunchtime dip and an evening peak.
DAY_CURVE = (
    0.15, 0.10, 0.08, 0.07, 0.08, 0.12, 0.25, 0.45, 0.70, 0.85, 0.90, 0.88,
    0.75, 0.80, 0.85, 0.82, 0.80, 0.85, 0.95, 1.00, 0.90, 0.65, 0.40, 0.25,
)  # fmt: skip


class Shape(LoadTestShape):
    """Base and peak users over `seconds`; subclasses say how users vary in between."""

    abstract: ClassVar[bool] = True
    name: ClassVar[str]

    def __init__(self, base: int = 1, peak: int = 10, seconds: float = 120) -> None:
        super().__init__()
        if not 0 <= base <= peak or seconds <= 0:
            raise ValueError("need 0 <= base <= peak and seconds > 0")
        self.base, self.peak, self.seconds = base, peak, seconds

    def users_at(self, elapsed: float) -> int:
        raise NotImplementedError

    def tick(self) -> tuple[int, float] | None:
        elapsed = self.get_run_time()
        if elapsed >= self.seconds:
            return None
        # Fast enough to reach the peak within a second or two.
        return self.users_at(elapsed), max(1.0, self.peak / 2)


class Steady(Shape):
    """The peak, all along."""

    name = "steady"

    def users_at(self, elapsed: float) -> int:
        return self.peak


class Step(Shape):
    """From base to peak in five equal steps."""

    name = "step"
    steps: ClassVar[int] = 5

    def users_at(self, elapsed: float) -> int:
        step = min(self.steps - 1, int(elapsed / (self.seconds / self.steps)))
        return self.base + round((self.peak - self.base) * step / (self.steps - 1))


class Spike(Shape):
    """Base for the first 15 %, the peak for the next 35 %, base again to the end."""

    name = "spike"
    starts: ClassVar[float] = 0.15
    ends: ClassVar[float] = 0.50

    def users_at(self, elapsed: float) -> int:
        fraction = elapsed / self.seconds
        return self.peak if self.starts <= fraction < self.ends else self.base


class Day(Shape):
    """A day's traffic curve (DAY_CURVE, interpolated) compressed into `seconds`."""

    name = "day"

    def users_at(self, elapsed: float) -> int:
        hour = 24 * elapsed / self.seconds
        low = math.floor(hour) % 24
        share = DAY_CURVE[low] + (DAY_CURVE[(low + 1) % 24] - DAY_CURVE[low]) * (hour - low)
        return self.base + round((self.peak - self.base) * share)


SHAPES: dict[str, type[Shape]] = {s.name: s for s in (Steady, Step, Spike, Day)}
