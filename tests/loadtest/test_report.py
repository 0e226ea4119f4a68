"""The moments of a scale-out, the tally line and the picture, from a watch CSV."""

from __future__ import annotations

import csv
import io
from collections import Counter, deque
from pathlib import Path

import httpx
import matplotlib.image
import numpy as np
from rich.console import Console

from loadtest import tally
from loadtest.moments import moments
from loadtest.report import plot
from loadtest.watch import COLUMNS, CsvLog, Sampler, read_csv, render
from shoal import keys
from shoal.registry import AutoscalerStatus, publish_autoscaler
from shoal.storage import Storage
from tests.conftest import Live
from tests.support import storage_settings, wait_for_job

T0 = 1_800_000_000.0


def spike_rows() -> list[dict[str, str]]:
    """One sample a second: demand above 1 worker from t=10 to t=29, 3 workers ready
    from t=14, back to 1 at t=45."""
    rows = []
    for t in range(60):
        busy = 10 <= t < 30
        ready = 3 if 14 <= t < 45 else 1
        desired = 3 if 11 <= t < 45 else 1
        rows.append(
            {
                "time": str(T0 + t), "waiting": str(6 if busy else 0),
                "running": str(ready if busy else t % 2), "oldest_waiting_s": "0",
                "workers": str(ready), "desired": str(desired), "current": str(max(desired, ready)),
                "ready": str(ready), "min_replicas": "1", "max_replicas": "4",
                "metric": "", "target": "1", "active": str(busy),
                "completions_per_s": "1.0", "tta_p50_s": "1.5" if busy else "0.6",
                "tta_p95_s": "4.0" if busy else "1.1", "source": "local",
            }
        )  # fmt: skip
    return rows


def write(rows: list[dict[str, str]], path: Path) -> Path:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_moments_of_a_spike() -> None:
    m = moments(spike_rows())
    assert (m.min_replicas, m.max_replicas) == (1, 3)
    assert (m.demand, m.peak, m.calm, m.drained) == (10, 14, 30, 45)
    assert (m.scale_out_s, m.drain_s) == (4, 15)
    flat = [dict(r, waiting="0", running="0", ready="1", desired="1") for r in spike_rows()]
    assert moments(flat).scale_out_s is None and moments(flat).max_replicas == 1


def test_the_tally_counts_what_the_store_and_bucket_hold() -> None:
    rows = moments(spike_rows())
    from shoal.jobs import JobInput, JobRecord, JobStatus

    def record(job: str, status: JobStatus) -> JobRecord:
        return JobRecord(id=job, status=status, input=JobInput(text="x"), created_at=T0)

    records = {
        "a": record("a", JobStatus.SUCCEEDED),
        "b": record("b", JobStatus.SUCCEEDED),
        "c": record("c", JobStatus.FAILED),
        "d": record("d", JobStatus.RUNNING),  # never ended: lost
    }
    # "e" was accepted (Locust has its id) but the store has no record: lost too.
    result = tally.count({"a", "b", "c", "e"}, records, Counter({"a": 1, "b": 2}), rows)
    assert result.line() == (
        "submitted=5 succeeded=2 failed=1 lost=2 duplicated=1 max_replicas=3 "
        "scale_out_s=4 drain_s=15"
    )
    assert not result.clean


def test_the_picture_is_a_full_hd_slide(tmp_path: Path) -> None:
    watch = write(spike_rows(), tmp_path / "watch.csv")
    history = tmp_path / "history.csv"
    with history.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["Timestamp", "User Count", "Type", "Name", "Requests/s"])
        for t in range(60):
            users = 12 if 10 <= t < 30 else 1
            writer.writerow([int(T0) + t, users, "", "Aggregated", 9.0])
            writer.writerow([int(T0) + t, users, "POST", "submit", users / 4])
    out = plot(watch, history, tmp_path / "out" / "spike.png", "A spike", "submitted=1")
    image = matplotlib.image.imread(out)
    assert image.shape[:2] == (1080, 1920)
    ink = np.mean(image[..., :3] < 0.9)
    assert 0.02 < ink < 0.5  # drawn on, not blank, not a solid block


def test_the_sampler_reads_the_queue_and_the_local_autoscaler(live: Live, tmp_path: Path) -> None:
    with httpx.Client(base_url=live.url, timeout=10) as http:
        wait_for_job(http, http.post("/v1/jobs", json={"text": "Sample me."}).json()["id"])
        status = AutoscalerStatus(
            source="test", desired=2, current=2, ready=1, retiring=0, min_replicas=1,
            max_replicas=4, metric=3, target=1, slots=1, active=True, reason="", updated_at=0,
        )  # fmt: skip
        publish_autoscaler(live.redis, status, ttl_seconds=30)
        try:
            sample = Sampler(http, window=60).sample()
        finally:
            live.redis.delete(keys.AUTOSCALER)
        assert (sample.desired, sample.ready, sample.source) == (2, 1, "local")
        assert sample.workers >= 1 and sample.completions_per_s > 0
        assert sample.tta_p50_s is not None and sample.tta_p50_s > 0
        shown = io.StringIO()
        Console(file=shown, width=100).print(render(deque([sample, sample])))
        assert "replicas desired/current/ready" in shown.getvalue()
        assert "2 / 2 / 1" in shown.getvalue() and "local" in shown.getvalue()
        log = CsvLog(tmp_path / "w.csv")
        log.write(sample)
        log.close()
        assert read_csv(tmp_path / "w.csv")[0]["desired"] == "2"
        assert Sampler(http).sample().source == ""  # nobody autoscales: no replicas


def test_tally_reads_the_real_store_and_bucket(live: Live) -> None:
    with httpx.Client(base_url=live.url, timeout=10) as http:
        ids = [http.post("/v1/jobs", json={"text": "Count me."}).json()["id"] for _ in range(2)]
        for job_id in ids:
            wait_for_job(http, job_id)
    records = tally.stored_jobs(live.redis)
    assert {records[j].status.value for j in ids} == {"succeeded"}
    storage = Storage(storage_settings(live.env))
    audio = tally.audio_objects(storage)
    assert [audio[j] for j in ids] == [1, 1]
    storage.put(f"audio/{ids[0]}/2.wav", b"RIFF", "audio/wav")  # a second result
    try:
        assert tally.audio_objects(storage)[ids[0]] == 2
    finally:
        storage.delete([f"audio/{ids[0]}/2.wav"])
