"""POST /v1/tts driven by both clients of the Fish Audio SDK, and by plain JSON and msgpack."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from datetime import datetime
from typing import Any

import fish_audio_sdk
import fishaudio
import httpx
import msgpack
import pytest
from fishaudio.types import ReferenceAudio, TTSConfig

from shoal import keys
from tests.api.test_openai_speech import SENTENCE, STORY
from tests.conftest import Live
from tests.support import assert_speech, decode_any, recording, wait_for_job

TINY = {"max_new_tokens": 24, "seed": 3}  # the tiny random Fish checkpoint: 24 frames
TINY_SECONDS = 24 * 2048 / 44100
REFERENCE_TEXT = "A short sentence in my own voice."


def post_msgpack(url: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/tts",
        content=msgpack.packb(body),
        headers={"content-type": "application/msgpack", **headers},
        timeout=120,
    )


@pytest.mark.parametrize(
    ("audio_format", "sample_rate"),
    [("mp3", 22050), ("wav", 22050), ("opus", 48000), ("pcm", 44100)],
)
def test_the_fishaudio_client_gets_each_format(
    live: Live, audio_format: str, sample_rate: int
) -> None:
    with fishaudio.FishAudio(api_key="unused", base_url=live.url) as client:
        data = client.tts.convert(text=SENTENCE, format=audio_format, model="s1")
    assert_speech(decode_any(data, audio_format, pcm_rate=44100), sample_rate, 3.0, 8.0)


def test_prosody_speed_is_honoured(live: Live) -> None:
    with fishaudio.FishAudio(api_key="unused", base_url=live.url) as client:
        normal = client.tts.convert(text=SENTENCE, format="wav")
        fast = client.tts.convert(text=SENTENCE, format="wav", speed=2.0)
    ratio = decode_any(fast, "wav").duration / decode_any(normal, "wav").duration
    assert ratio == pytest.approx(0.5, rel=0.05)


def test_the_legacy_session_client_works_sync_and_async(live: Live) -> None:
    request = fish_audio_sdk.TTSRequest(text=SENTENCE, format="mp3")
    with fish_audio_sdk.Session("unused", base_url=live.url) as session:
        audio = b"".join(session.tts(request, backend="s1"))
    assert_speech(decode_any(audio, "mp3"), 22050, 3.0, 8.0)

    async def collect() -> bytes:
        async with fish_audio_sdk.Session("unused", base_url=live.url) as session:
            return b"".join([chunk async for chunk in session.tts.awaitable(request)])

    assert_speech(decode_any(asyncio.run(collect()), "mp3"), 22050, 3.0, 8.0)


def test_a_json_body_as_the_fish_speech_server_takes_it(live: Live) -> None:
    body = {"text": SENTENCE, "format": "wav", "seed": 7, "chunk_length": 150, "normalize": True}
    response = httpx.post(f"{live.url}/v1/tts", json=body, timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    assert_speech(decode_any(response.content, "wav"), 22050, 3.0, 8.0)
    job = httpx.get(f"{live.url}/v1/jobs/{response.headers['x-shoal-job-id']}").json()
    assert job["input"]["engine_params"]["seed"] == 7
    assert job["input"]["engine_params"]["chunk_length"] == 150


def test_an_engine_that_cannot_clone_refuses_inline_references(live: Live) -> None:
    before = (live.redis.llen(keys.TTS_QUEUE), len(live.redis.keys(keys.voice("*"))))
    body = {"text": "Hi", "references": [{"audio": recording(3.0), "text": REFERENCE_TEXT}]}
    response = post_msgpack(live.url, body)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "voice_not_supported"
    assert "cannot clone" in response.json()["detail"]
    assert (live.redis.llen(keys.TTS_QUEUE), len(live.redis.keys(keys.voice("*")))) == before


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"text": "Hi", "prosody": {"speed": 1.0, "volume": 6.0}}, 422, "unsupported_parameter"),
        ({"text": "Hi", "chunk_length": 50}, 422, "out_of_range"),
        ({"text": "Hi", "temperature": 0.0}, 422, "out_of_range"),
        ({"text": "Hi", "format": "aiff"}, 422, "unsupported_format"),
        ({"text": ""}, 422, "text_empty"),
        ({"text": "Hi", "reference_id": "nobody"}, 422, "unknown_voice"),
        ({"chunk_length": 200}, 422, "missing_field"),
    ],
)
def test_bad_requests_are_refused_with_a_code(
    live: Live, body: dict[str, Any], status: int, code: str
) -> None:
    response = post_msgpack(live.url, body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


def test_a_body_that_is_not_msgpack_or_json_is_a_400(live: Live) -> None:
    bad = httpx.post(
        f"{live.url}/v1/tts", content=b"\xc1", headers={"content-type": "application/msgpack"}
    )
    assert bad.status_code == 400 and bad.json()["code"] == "malformed_msgpack"
    worse = httpx.post(f"{live.url}/v1/tts", content=b"{text", headers={"content-type": "x/y"})
    assert worse.status_code == 400 and worse.json()["code"] == "malformed_json"


def test_a_stream_whose_job_fails_first_is_an_error_naming_the_job(live: Live) -> None:
    response = post_msgpack(live.url, {"text": "\u200b", "streaming": True})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "no_speech" and problem["job_id"].startswith("job_")
    assert response.headers["x-shoal-job-id"] == problem["job_id"]


def test_health(live: Live) -> None:
    assert httpx.get(f"{live.url}/v1/health").json() == {"status": "ok"}


def test_an_inline_reference_clones_and_is_reused(fish_live: Live) -> None:
    reference = ReferenceAudio(audio=recording(3.0), text=REFERENCE_TEXT)
    config = TTSConfig(format="wav", references=[reference], max_new_tokens=24)
    with fishaudio.FishAudio(api_key="unused", base_url=fish_live.url) as client:
        for _ in range(2):
            audio = decode_any(client.tts.convert(text="Say this.", config=config), "wav")
            assert audio.sample_rate == 44100
            assert audio.duration == pytest.approx(TINY_SECONDS, abs=1e-3)
    # One voice for both requests: unlisted, expiring, its recording stored once.
    (voice_key,) = fish_live.redis.keys(keys.voice("voice_inline_*"))
    assert 0 < fish_live.redis.ttl(voice_key) <= 86_400
    voice_id = str(voice_key).removeprefix(keys.voice(""))
    assert fish_live.redis.zscore(keys.VOICES, voice_id) is None

    # The SDK sends no seed; with one, the reference visibly shapes the speech.
    body = {"text": "Say this.", "format": "wav", **TINY}
    inline = {"references": [{"audio": reference.audio, "text": REFERENCE_TEXT}]}
    cloned = post_msgpack(fish_live.url, {**body, **inline})
    again = post_msgpack(fish_live.url, {**body, **inline})
    plain = post_msgpack(fish_live.url, body)
    assert cloned.status_code == again.status_code == plain.status_code == 200
    assert cloned.content == again.content  # the same voice and seed: the same audio
    assert plain.content != cloned.content


def test_a_base64_reference_in_json_clones_too(fish_live: Live) -> None:
    audio = base64.b64encode(recording(2.5, sample_rate=16000)).decode()
    references = [{"audio": audio, "text": "Hi."}]
    body = {"text": "Hello.", "format": "pcm", "references": references}
    response = httpx.post(f"{fish_live.url}/v1/tts", json={**body, **TINY}, timeout=120)
    assert response.status_code == 200, response.text
    decoded = decode_any(response.content, "pcm", pcm_rate=44100)
    assert decoded.duration == pytest.approx(TINY_SECONDS, abs=1e-3)
    job_id = response.headers["x-shoal-job-id"]
    job = json.loads(fish_live.redis.hget(keys.job(job_id), "input") or "")
    assert job["voice"].startswith("voice_inline_")
    two = {**body, "references": references * 2}
    refused = httpx.post(f"{fish_live.url}/v1/tts", json=two, timeout=30)
    assert refused.status_code == 422 and refused.json()["code"] == "too_many_references"


def test_streaming_sends_wav_as_each_chunk_is_spoken(paced: Live) -> None:
    body = {"text": STORY, "format": "wav", "streaming": True}
    with httpx.stream(
        "POST",
        f"{paced.url}/v1/tts",
        content=msgpack.packb(body),
        headers={"content-type": "application/msgpack"},
        timeout=60,
    ) as response:
        assert response.status_code == 200
        job_id = response.headers["x-shoal-job-id"]
        chunks = response.iter_raw()
        first = next(chunks)
        first_at = time.time()
        data = first + b"".join(chunks)
    assert first.startswith(b"RIFF")
    with httpx.Client(base_url=paced.url) as http:
        job = wait_for_job(http, job_id)
    assert first_at < datetime.fromisoformat(job["finished_at"]).timestamp()
    audio = decode_any(data, "wav")
    assert_speech(audio, 22050, 8.0, 25.0)
    assert audio.duration == pytest.approx(job["audio"]["duration_seconds"], abs=0.05)
