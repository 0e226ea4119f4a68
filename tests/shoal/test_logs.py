"""JSON logs: every line of every process parses, and one request id greps a job's life."""

from __future__ import annotations

from typing import Any

from shoal import keys
from tests.observed import PROCESSES, REQUEST_ID, Observed


def _with_the_id(observed: Observed, process: str) -> list[dict[str, Any]]:
    return [line for line in observed.log_lines(process) if line.get("request_id") == REQUEST_ID]


def test_every_line_of_every_process_is_a_json_object(observed: Observed) -> None:
    for process in PROCESSES:
        lines = observed.log_lines(process)  # json.loads fails on any other line
        assert lines, process
        for line in lines:
            assert {"event", "level", "timestamp", "component"} <= set(line), line


def test_one_request_id_follows_the_job_from_submit_to_webhook(observed: Observed) -> None:
    job_id = observed.job["id"]
    assert observed.redis.hget(keys.job(job_id), "request_id") == REQUEST_ID

    gateway = _with_the_id(observed, "gateway")
    (access,) = [line for line in gateway if line["event"] == "request"]
    assert access["route"] == "/v1/jobs" and access["status"] == 202
    assert [line["job_id"] for line in gateway if line["event"] == "job queued"] == [job_id]
    for process, expected in (
        ("worker", {"job started", "job succeeded"}),
        ("webhooks", {"webhook attempt"}),
    ):
        lines = _with_the_id(observed, process)
        assert expected <= {line["event"] for line in lines}, (process, lines)
        assert {line["job_id"] for line in lines} == {job_id}
    (delivery,) = observed.hooks.to("/ok")
    assert delivery.headers["x-request-id"] == REQUEST_ID


def test_other_jobs_do_not_carry_the_id(observed: Observed) -> None:
    others = {observed.failed_job, observed.canceled_job}
    seen = set()
    for process in PROCESSES:
        for line in observed.log_lines(process):
            if line.get("job_id") in others:
                seen.add(line["job_id"])
                assert line.get("request_id") != REQUEST_ID, line
    assert seen == others  # both were logged, with ids of their own
