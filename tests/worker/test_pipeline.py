"""End to end: gateway -> Redis -> a real Celery worker -> SeaweedFS -> presigned URL."""

from __future__ import annotations

import httpx
import pytest

from shoal.jobs import AudioFormat
from tests.support import assert_speech, decode, decode_any, wait_for_job

SENTENCE = "The quick brown fox jumps over the lazy dog, twice before breakfast."


@pytest.mark.parametrize("audio_format", ["wav", "flac", "mp3", "ogg", "opus", "aac", "pcm"])
def test_each_format_decodes_to_real_speech(client: httpx.Client, audio_format: str) -> None:
    job = client.post("/v1/jobs", json={"text": SENTENCE, "format": audio_format}).json()
    done = wait_for_job(client, job["id"])
    assert done["status"] == "succeeded", done
    audio = done["audio"]
    assert audio["format"] == audio_format
    response = httpx.get(audio["url"])
    assert response.status_code == 200
    assert len(response.content) == audio["bytes"]
    assert response.headers["content-type"] == AudioFormat(audio_format).content_type
    decoded = decode_any(response.content, audio_format, pcm_rate=audio["sample_rate"])
    # About 12 words: 3-8 s at espeak's default rate (Opus is always 8-48 kHz).
    assert_speech(decoded, 48000 if audio_format == "opus" else 22050, 3.0, 8.0)
    assert abs(decoded.duration - audio["duration_seconds"]) < 0.1  # mp3/ogg pad a little


@pytest.mark.parametrize(
    ("text", "language", "voice_language"),
    [
        ("Guten Morgen, wie geht es Ihnen heute?", "de", "de"),
        ("你好，世界。今天天气很好。", "zh", "cmn"),
        ("今日はいい天気ですね。", None, "ja"),  # script detection: no language given
        ("مرحبا بالعالم، كيف حالك اليوم؟", "ar", "ar"),
    ],
)
def test_languages_and_non_latin_text(
    client: httpx.Client, text: str, language: str | None, voice_language: str
) -> None:
    body = {"text": text, **({"language": language} if language else {})}
    done = wait_for_job(client, client.post("/v1/jobs", json=body).json()["id"])
    assert done["status"] == "succeeded", done
    assert_speech(decode(httpx.get(done["audio"]["url"]).content), 22050, 0.8, 10.0)


def test_a_named_voice_is_used(client: httpx.Client) -> None:
    voices = client.get("/v1/voices").json()
    assert voices["engine"] == "espeak"
    ids = {v["id"] for v in voices["voices"]}
    assert {"en-us", "de", "cmn", "ja"} <= ids
    assert voices["languages"]["zh"] == "cmn"
    us = wait_for_job(
        client, client.post("/v1/jobs", json={"text": "Tomato", "voice": "en-us"}).json()["id"]
    )
    gb = wait_for_job(
        client, client.post("/v1/jobs", json={"text": "Tomato", "voice": "en"}).json()["id"]
    )
    assert us["status"] == gb["status"] == "succeeded"
    # Two accents of one word: different audio.
    assert httpx.get(us["audio"]["url"]).content != httpx.get(gb["audio"]["url"]).content


def test_text_without_speech_fails_with_a_reason(client: httpx.Client) -> None:
    job = client.post("/v1/jobs", json={"text": "\u200b"}).json()
    done = wait_for_job(client, job["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == "no_speech"
    assert done["error"]["message"]
    assert done["audio"] is None
