"""End to end on the fish-speech engine: gateway -> Redis -> a real Celery worker
loading a tiny random checkpoint in the real format -> SeaweedFS -> presigned URL.

The checkpoint never reaches end of speech, so every chunk is exactly
`max_new_tokens` frames of 2048 samples at 44.1 kHz.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import assert_speech, decode, wait_for_job
from worker.engines.fish.engine import PAUSE_SECONDS
from worker.engines.text_chunks import split_text

RATE = 44100
FRAME = 2048


def run(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    done = wait_for_job(client, response.json()["id"], timeout=60)
    assert done["status"] == "succeeded", done
    return done


@pytest.mark.parametrize("audio_format", ["wav", "flac", "mp3", "ogg"])
def test_a_job_becomes_44k_audio_of_the_frames_asked_for(
    fish_client: httpx.Client, audio_format: str
) -> None:
    done = run(
        fish_client,
        {
            "text": "Hello from Fish Speech in shoal.",
            "format": audio_format,
            "engine_params": {"max_new_tokens": 40, "seed": 11},
        },
    )
    audio = done["audio"]
    assert audio["sample_rate"] == RATE and audio["format"] == audio_format
    assert audio["duration_seconds"] == pytest.approx(40 * FRAME / RATE, abs=1e-3)
    data = httpx.get(audio["url"]).content
    assert len(data) == audio["bytes"]
    expected = 40 * FRAME / RATE
    assert_speech(decode(data), RATE, expected - 0.06, expected + 0.06)  # mp3/ogg pad


def test_the_same_seed_gives_the_same_audio(fish_client: httpx.Client) -> None:
    body = {"text": "Seeded speech.", "engine_params": {"max_new_tokens": 16, "seed": 99}}
    first, again = run(fish_client, body), run(fish_client, body)
    other = run(fish_client, {**body, "engine_params": {"max_new_tokens": 16, "seed": 100}})
    audio = [httpx.get(job["audio"]["url"]).content for job in (first, again, other)]
    assert audio[0] == audio[1]
    assert audio[0] != audio[2]


def test_long_text_is_spoken_in_chunks(fish_client: httpx.Client) -> None:
    text = " ".join(f"Paragraph sentence {n} goes on for a little while." for n in range(12))
    chunks = len(split_text(text, 120))
    assert chunks >= 5
    done = run(
        fish_client,
        {"text": text, "engine_params": {"max_new_tokens": 8, "seed": 1, "chunk_length": 120}},
    )
    samples = chunks * 8 * FRAME + (chunks - 1) * int(PAUSE_SECONDS * RATE)
    assert done["audio"]["duration_seconds"] == pytest.approx(samples / RATE, abs=1e-3)


def test_the_fish_catalog_is_published(fish_client: httpx.Client) -> None:
    voices = fish_client.get("/v1/voices").json()
    assert voices["engine"] == "fish-speech"
    assert voices["cloning"] is True
    assert voices["languages"] is None and voices["default_voice"] is None
    # Any language tag is accepted: Fish reads the language from the text.
    done = run(
        fish_client,
        {"text": "こんにちは。", "language": "ja", "engine_params": {"max_new_tokens": 8}},
    )
    assert done["audio"]["sample_rate"] == RATE


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"chunk_length": 301}, "chunk_length"),
        ({"chunk_length": 99}, "chunk_length"),
        ({"temperature": 1.5}, "temperature"),
        ({"repetition_penalty": 2.5}, "repetition_penalty"),
        ({"max_new_tokens": 9000}, "max_new_tokens"),
    ],
)
def test_engine_params_outside_fish_ranges_are_refused(
    fish_client: httpx.Client, params: dict[str, Any], field: str
) -> None:
    response = fish_client.post("/v1/jobs", json={"text": "Hi", "engine_params": params})
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "invalid_parameter"
    assert problem["errors"][0]["field"] == f"engine_params.{field}"


def test_an_unknown_voice_is_refused_at_submit(fish_client: httpx.Client) -> None:
    response = fish_client.post("/v1/jobs", json={"text": "Hi", "voice": "voice_nope"})
    assert response.status_code == 422
    assert response.json()["code"] == "unknown_voice"
