"""`shoal report`: one picture of a load test, for a slide.

Four panels on one time axis: the offered load (Locust's users and submits per
second), the queue (waiting and running jobs), the worker pool (desired and
ready replicas between the ScaledObject's bounds) and time to audio (p50 and
p95 of the jobs that ended in the watch's window), with the moments of the
scale-out (`loadtest.moments`) marked across all four.
"""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from loadtest.moments import Moments, moments
from loadtest.watch import read_csv

INK, MUTED, GRID = "#1f2933", "#7b8794", "#e4e7eb"
LOAD, WAITING, RUNNING, DESIRED, READY, P50, P95 = (
    "#3e4c59", "#f0b429", "#2186eb", "#9aa5b1", "#0e7c86", "#2186eb", "#d64545",
)  # fmt: skip
SUBMIT = "submit"


def _float(value: str) -> float | None:
    return float(value) if value not in ("", "N/A") else None


def locust_history(path: Path, start: float) -> tuple[list[float], list[float], list[float]]:
    """(seconds since `start`, users, submits per second) from Locust's stats history."""
    t, users, submits = [], [], []
    by_time: dict[float, tuple[float, float]] = {}
    with path.open(newline="") as file:
        for row in csv.DictReader(file):
            when = float(row["Timestamp"]) - start
            count, rate = by_time.get(when, (float(row["User Count"]), 0.0))
            if row["Name"] == SUBMIT:
                rate = float(row["Requests/s"])
            by_time[when] = (count, rate)
    for when in sorted(by_time):
        t.append(when)
        users.append(by_time[when][0])
        submits.append(by_time[when][1])
    return t, users, submits


def _style(ax: Axes, ylabel: str) -> None:
    ax.set_ylabel(ylabel, color=INK, fontsize=12)
    ax.grid(axis="y", color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.spines["left"].set_color(MUTED)
    ax.spines["bottom"].set_color(MUTED)
    ax.tick_params(colors=MUTED, labelsize=10)
    ax.set_ylim(bottom=0)


def _mark(axes: list[Axes], m: Moments) -> None:
    labels = [
        (m.demand, "spike arrives"),
        (m.peak, f"peak: {m.max_replicas} workers"),
        (m.calm, "queue drained"),
        (m.drained, f"back to {m.min_replicas}"),
    ]
    if m.demand is not None and m.drained is not None:
        for ax in axes:
            ax.axvspan(m.demand, m.drained, color="#f5f7fa", zorder=0)
    for row, (when, label) in enumerate(labels):
        if when is None:
            continue
        for ax in axes:
            ax.axvline(when, color=MUTED, linestyle=(0, (3, 3)), linewidth=1)
        # Two rows of labels, so moments a second apart stay readable.
        axes[0].annotate(
            label, (when, 1.04 + 0.16 * (row % 2)), xycoords=("data", "axes fraction"),
            ha="center", fontsize=10, color=INK,
        )  # fmt: skip


def plot(
    watch_csv: Path, locust_csv: Path | None, out: Path, title: str, subtitle: str = ""
) -> Path:
    rows = read_csv(watch_csv)
    m = moments(rows)
    t = [float(r["time"]) - m.start for r in rows]

    def column(name: str) -> list[float | None]:
        return [_float(r.get(name, "")) for r in rows]

    fig, axes = plt.subplots(4, 1, sharex=True, figsize=(12.8, 7.2), dpi=150)
    fig.subplots_adjust(left=0.07, right=0.83, top=0.82, bottom=0.08, hspace=0.3)
    load, queue, pool, tta = axes
    if locust_csv is not None and locust_csv.exists():
        lt, users, submits = locust_history(locust_csv, m.start)
        load.fill_between(lt, users, step="post", color=LOAD, alpha=0.25, linewidth=0)
        load.step(lt, users, where="post", color=LOAD, linewidth=1.5, label="users (one job each)")
        load.plot(lt, submits, color=P50, linewidth=1.5, label="submits / s")
    _style(load, "offered load")
    waiting = [v or 0 for v in column("waiting")]
    running = [v or 0 for v in column("running")]
    queue.stackplot(t, running, waiting, colors=[RUNNING, WAITING], alpha=0.85,
                    labels=["running", "waiting"])  # fmt: skip
    _style(queue, "jobs")
    ready = [
        v if v is not None else w for v, w in zip(column("ready"), column("workers"), strict=True)
    ]
    pool.step(t, column("desired"), where="post", color=DESIRED, linewidth=2, linestyle="--",
              label="desired")  # fmt: skip
    pool.step(t, ready, where="post", color=READY, linewidth=2.5, label="ready")
    pool.axhline(m.min_replicas, color=MUTED, linewidth=0.8, linestyle=":")
    bound = next((v for v in column("max_replicas") if v is not None), None)
    if bound is not None:
        pool.axhline(bound, color=MUTED, linewidth=0.8, linestyle=":")
        pool.set_ylim(0, bound + 1)
    _style(pool, "workers")
    pool.set_ylim(0, (bound or m.max_replicas) + 1)
    tta.plot(t, column("tta_p50_s"), color=P50, linewidth=2, label="p50")
    tta.plot(t, column("tta_p95_s"), color=P95, linewidth=2, label="p95")
    _style(tta, "time to audio (s)")
    tta.set_xlabel("seconds", color=INK, fontsize=12)
    for ax in axes:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=10)
        ax.set_xlim(0, t[-1])
    _mark(list(axes), m)
    fig.suptitle(title, x=0.07, y=0.975, ha="left", fontsize=18, fontweight="bold", color=INK)
    if subtitle:
        fig.text(0.07, 0.905, subtitle, fontsize=11, color=MUTED)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, facecolor="white")
    plt.close(fig)
    return out
