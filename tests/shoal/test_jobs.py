"""The job request model: validation shared by the gateway and the records."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shoal.jobs import JobRecord, JobRequest, JobStatus, new_job_id


def test_ids_are_url_safe_and_unguessable() -> None:
    ids = {new_job_id() for _ in range(1000)}
    assert len(ids) == 1000
    for job_id in ids:
        assert job_id.startswith("job_")
        assert len(job_id) == 26
        assert all(c.isalnum() or c in "-_" for c in job_id)


def test_terminal_states() -> None:
    assert {s for s in JobStatus if s.is_terminal} == {"succeeded", "failed", "canceled"}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"text": ""}, "text_empty"),
        ({"text": "a" * 5001}, "text_too_long"),
        ({"text": "hi", "language": "english please"}, "invalid_language"),
        ({"text": "hi", "metadata": {"x": "y" * 17_000}}, "metadata_too_large"),
    ],
)
def test_request_errors_carry_stable_codes(body: dict[str, object], code: str) -> None:
    with pytest.raises(ValidationError) as raised:
        JobRequest.model_validate(body)
    assert raised.value.errors()[0]["type"] == code


def test_the_text_limit_follows_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from shoal.settings import get_settings

    monkeypatch.setenv("SHOAL_MAX_TEXT_CHARS", "10")
    get_settings.cache_clear()
    try:
        with pytest.raises(ValidationError):
            JobRequest(text="eleven chars")
        # A record accepted under an older, higher limit stays readable.
        record = JobRecord.from_hash(
            {
                "id": "job_x",
                "status": "queued",
                "created_at": "1.0",
                "input": '{"text": "eleven chars"}',
            }
        )
        assert record.input.text == "eleven chars"
    finally:
        get_settings.cache_clear()


def test_engine_params_are_echoed_without_nulls() -> None:
    request = JobRequest(text="hi", engine_params={"seed": 7})
    assert request.job_input().model_dump(mode="json")["engine_params"] == {"seed": 7}
