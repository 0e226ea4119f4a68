"""POST /v1/audio/speech driven by the official `openai` client against real stacks."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import datetime

import httpx
import openai
import pytest

from shoal import keys
from shoal.local.redis_server import RedisServer
from shoal.local.s3_server import SeaweedS3
from tests.conftest import Live, fresh_env
from tests.support import assert_speech, decode_any, gateway, wait_for_job

SENTENCE = "The quick brown fox jumps over the lazy dog, twice before breakfast."
# Three chunks of whole sentences: streamed, they arrive one after the other.
STORY = (
    "Once upon a time a small boat left the harbour before dawn, with three sailors. "
    "The wind rose, the waves grew, and the sailors held on to the ropes all morning. "
    "By the evening the storm was gone, and the boat came home under a quiet sky."
)


def speech_client(url: str, api_key: str = "unused", retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=retries, timeout=60)


@pytest.fixture(scope="module")
def oai(live: Live) -> Iterator[openai.OpenAI]:
    with speech_client(live.url) as client:
        yield client


@pytest.mark.parametrize(
    ("response_format", "sample_rate"),
    [
        ("mp3", 22050),
        ("opus", 48000),
        ("aac", 22050),
        ("flac", 22050),
        ("wav", 22050),
        ("pcm", 24000),
    ],
)
def test_every_format_decodes_to_speech(
    oai: openai.OpenAI, response_format: str, sample_rate: int
) -> None:
    response = oai.audio.speech.with_raw_response.create(
        model="tts-1",
        voice="alloy",
        input=SENTENCE,
        response_format=response_format,  # type: ignore[arg-type]
    )
    assert response.headers["x-shoal-job-id"].startswith("job_")
    audio = decode_any(response.content, response_format, pcm_rate=24000)
    assert_speech(audio, sample_rate, 3.0, 8.0)


def test_speed_is_honoured(oai: openai.OpenAI) -> None:
    def seconds(speed: float) -> float:
        data = oai.audio.speech.create(
            model="gpt-4o-mini-tts",
            voice="nova",
            input=SENTENCE,
            response_format="wav",
            speed=speed,
        ).read()
        return decode_any(data, "wav").duration

    normal, fast, slow = seconds(1.0), seconds(2.0), seconds(0.5)
    assert fast == pytest.approx(normal / 2, rel=0.05)
    assert slow == pytest.approx(normal * 2, rel=0.05)


def test_a_shoal_voice_id_is_used_as_is(oai: openai.OpenAI, live: Live) -> None:
    response = oai.audio.speech.with_raw_response.create(
        model="tts-1", voice={"id": "de"}, input="Guten Morgen.", response_format="wav"
    )
    job = json.loads(live.redis.hget(keys.job(response.headers["x-shoal-job-id"]), "input") or "")
    assert job["voice"] == "de" and job["format"] == "wav"


@pytest.mark.parametrize(
    ("fields", "code", "param"),
    [
        ({"instructions": "Speak like a pirate."}, "instructions_not_supported", "instructions"),
        ({"voice": "no-such-voice"}, "unknown_voice", None),
        ({"response_format": "aiff"}, "unsupported_format", "response_format"),
        ({"speed": 9.0}, "out_of_range", "speed"),
        ({"input": "x" * 5001}, "text_too_long", "input"),
        ({"input": "   "}, "text_empty", "input"),
        ({"temperature": 0.3}, "unknown_field", "temperature"),
    ],
)
def test_errors_come_in_openai_shape(
    oai: openai.OpenAI, live: Live, fields: dict[str, object], code: str, param: str | None
) -> None:
    before = live.redis.llen(keys.TTS_QUEUE)
    body = {"model": "tts-1", "voice": "alloy", "input": SENTENCE, **fields}
    with pytest.raises(openai.BadRequestError) as raised:
        oai.post("/audio/speech", body=body, cast_to=httpx.Response)
    error = raised.value
    assert error.status_code == 400
    assert error.code == code and error.param == param and error.type == "invalid_request_error"
    assert isinstance(error.body, dict) and error.body["message"]
    assert live.redis.llen(keys.TTS_QUEUE) == before  # nothing queued


def test_keys_and_voice_mapping_of_a_configured_gateway(live: Live) -> None:
    configured = live.env.with_(SHOAL_API_KEYS="right-key", SHOAL_OPENAI_VOICES="nova=de")
    with (
        gateway(configured) as url,
        speech_client(url, api_key="wrong-key") as wrong,
        speech_client(url, api_key="right-key") as right,
    ):
        with pytest.raises(openai.AuthenticationError) as raised:
            wrong.audio.speech.create(model="tts-1", voice="alloy", input="Hi")
        assert raised.value.code == "unauthorized"
        assert raised.value.type == "authentication_error"
        response = right.audio.speech.with_raw_response.create(
            model="tts-1", voice="nova", input="Guten Tag."
        )
        assert decode_any(response.content, "mp3").duration > 0.2
        job_id = response.headers["x-shoal-job-id"]
        stored = json.loads(live.redis.hget(keys.job(job_id), "input") or "")
        assert stored["voice"] == "de"  # nova, as SHOAL_OPENAI_VOICES maps it


def test_a_job_that_outlasts_the_wait_names_its_id_and_is_not_retried(
    redis_server: RedisServer, s3_server: SeaweedS3
) -> None:
    env = fresh_env(redis_server, s3_server).with_(SHOAL_SYNC_WAIT_SECONDS="1")
    with gateway(env) as url, speech_client(url, retries=2) as client:
        with pytest.raises(openai.APIStatusError) as raised:
            client.audio.speech.create(model="tts-1", voice="alloy", input="No worker runs.")
        error = raised.value
        assert error.status_code == 504 and error.code == "synthesis_timeout"
        job_id = error.response.headers["x-shoal-job-id"]
        assert job_id in str(error.body) and isinstance(error.body, dict)
        assert error.body["job_id"] == job_id
        job = httpx.get(f"{url}/v1/jobs/{job_id}").json()
        assert job["status"] == "queued"  # still there, to poll
        # x-should-retry: false kept the client from queueing the text twice more.
        assert httpx.get(f"{url}/v1/queue").json()["queues"]["tts"]["waiting"] == 1
        with pytest.raises(openai.APIStatusError) as streamed:  # waiting for a first piece
            client.audio.speech.create(
                model="tts-1", voice="alloy", input="Nor this.", stream_format="audio"
            )
        assert streamed.value.status_code == 504 and streamed.value.code == "synthesis_timeout"
        assert httpx.get(f"{url}/v1/queue").json()["queues"]["tts"]["waiting"] == 2


def test_streamed_audio_starts_before_the_job_ends(paced: Live) -> None:
    with (
        speech_client(paced.url) as client,
        client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input=STORY, response_format="pcm", stream_format="audio"
        ) as response,
    ):
        job_id = response.headers["x-shoal-job-id"]
        chunks = response.iter_bytes()
        first = next(chunks)
        first_at = time.time()
        data = first + b"".join(chunks)
    with httpx.Client(base_url=paced.url) as http:
        job = wait_for_job(http, job_id)  # the stream ends before the file is stored
    assert job["status"] == "succeeded"
    assert first_at < datetime.fromisoformat(job["finished_at"]).timestamp()
    audio = decode_any(data, "pcm", pcm_rate=24000)
    assert_speech(audio, 24000, 8.0, 25.0)
    assert audio.duration == pytest.approx(job["audio"]["duration_seconds"], abs=0.05)


def test_sse_streams_base64_deltas_then_done(paced: Live) -> None:
    events = []
    with (
        speech_client(paced.url) as client,
        client.audio.speech.with_streaming_response.create(
            model="gpt-4o-mini-tts",
            voice="coral",
            input=STORY,
            response_format="mp3",
            stream_format="sse",
        ) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    deltas = [event for event in events if event["type"] == "speech.audio.delta"]
    assert len(deltas) >= 3  # one per chunk of text at least
    assert events[-1]["type"] == "speech.audio.done"
    assert events[-1]["usage"]["input_tokens"] == len(STORY)
    audio = decode_any(b"".join(base64.b64decode(event["audio"]) for event in deltas), "mp3")
    assert_speech(audio, 22050, 8.0, 25.0)
