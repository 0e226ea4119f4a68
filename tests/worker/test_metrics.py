"""A worker's metrics after a known workload (tests/observed.py): counts are exact."""

from __future__ import annotations

import pytest

from tests.observed import Observed


def test_outcomes_and_failures_by_code(observed: Observed) -> None:
    m = observed.scrape("worker")
    jobs = m["shoal_worker_jobs_total"]
    assert jobs.value(sample="shoal_worker_jobs_total", outcome="succeeded") == 1
    assert jobs.value(sample="shoal_worker_jobs_total", outcome="failed") == 1
    failed = observed.http.get(f"/v1/jobs/{observed.failed_job}").json()
    code = failed["error"]["code"]
    assert m["shoal_jobs_failed_total"].value(sample="shoal_jobs_failed_total", code=code) == 1


def test_latencies_real_time_factor_and_audio(observed: Observed) -> None:
    m = observed.scrape("worker")
    # The canceled job never started; the failed and the succeeded one did, once each.
    assert m["shoal_job_queue_wait_seconds"].value("shoal_job_queue_wait_seconds_count") == 2
    assert m["shoal_job_time_to_audio_seconds"].value("shoal_job_time_to_audio_seconds_count") == 1
    rtf = m["shoal_worker_real_time_factor"]
    assert rtf.value("shoal_worker_real_time_factor_count") == 1
    assert rtf.value("shoal_worker_real_time_factor_sum") > 0
    audio = m["shoal_worker_audio_seconds_total"].value("shoal_worker_audio_seconds_total")
    assert audio == pytest.approx(observed.job["audio"]["duration_seconds"], abs=0.01)
    stages = m["shoal_worker_stage_seconds"]
    for stage in ("synthesize", "encode", "upload", "record"):
        assert stages.value("shoal_worker_stage_seconds_count", stage=stage) == 1, stage
    # submit -> audio covers at least the synthesis and the upload of the same job
    time_to_audio = m["shoal_job_time_to_audio_seconds"].value(
        "shoal_job_time_to_audio_seconds_sum"
    )
    work = sum(
        stages.value("shoal_worker_stage_seconds_sum", stage=s) for s in ("synthesize", "upload")
    )
    assert time_to_audio >= work


def test_batch_occupancy(observed: Observed) -> None:
    m = observed.scrape("worker")
    assert m["shoal_worker_slots"].value(engine="espeak") == 1  # espeak: one job at a time
    assert m["shoal_worker_busy_slots"].value(engine="espeak") == 0  # idle now
    assert "shoal_worker_batch_sequences" in m  # the Fish Speech engine sets it


def test_webhook_deliveries_by_outcome(observed: Observed) -> None:
    m = observed.scrape("webhooks")
    deliveries = m["shoal_webhook_deliveries_total"]
    assert deliveries.value("shoal_webhook_deliveries_total", outcome="delivered") == 1
    assert m["shoal_webhook_attempt_seconds"].value("shoal_webhook_attempt_seconds_count") == 1
    # A webhook worker runs no synthesis: no slots of an engine.
    assert not m["shoal_worker_slots"].samples
