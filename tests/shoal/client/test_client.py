"""shoal.client against a real stack: every call, sync and async, and its errors."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

import shoal.client
from shoal.client import AsyncClient, Client, JobStatus
from shoal.local.redis_server import RedisServer
from shoal.local.s3_server import SeaweedS3
from tests.conftest import Live, fresh_env
from tests.support import assert_speech, decode_any, gateway, recording


@pytest.fixture
def shoal_client(live: Live) -> Iterator[Client]:
    with Client(live.url) as client:
        yield client


def test_say_submit_wait_and_download(shoal_client: Client, tmp_path: object) -> None:
    job, audio = shoal_client.say("Hello from the client.", format="mp3", metadata={"n": 1})
    assert job.status is JobStatus.SUCCEEDED and job.metadata == {"n": 1}
    assert_speech(decode_any(audio, "mp3"), 22050, 0.8, 5.0)
    submitted = shoal_client.submit("Second one.", format="opus", speed=1.5)
    finished = shoal_client.wait(submitted.id)
    assert finished.audio is not None and finished.audio.sample_rate == 48000
    assert shoal_client.get(submitted.id).input.speed == 1.5
    path = shoal_client.download(submitted.id, tmp_path / "second.opus")  # type: ignore[operator]
    assert path.read_bytes() == shoal_client.audio(submitted.id)


def test_a_streamed_job_is_read_piece_by_piece(shoal_client: Client) -> None:
    job = shoal_client.submit("One sentence. Another sentence. " * 8, format="wav", stream=True)
    data = b"".join(shoal_client.stream(job.id))
    done = shoal_client.wait(job.id)
    assert decode_any(data, "wav").duration == pytest.approx(done.audio.duration_seconds, abs=0.05)  # type: ignore[union-attr]


def test_errors_carry_the_problem_code(shoal_client: Client) -> None:
    with pytest.raises(shoal.client.NotFound) as missing:
        shoal_client.get("job_nope")
    assert missing.value.code == "job_not_found" and missing.value.status == 404
    with pytest.raises(shoal.client.InvalidRequest) as invalid:
        shoal_client.submit("   ")
    assert invalid.value.code == "text_empty" and "text" in invalid.value.detail
    job, _ = shoal_client.say("Done.")
    with pytest.raises(shoal.client.Conflict) as conflict:
        shoal_client.redeliver_webhook(job.id)
    assert conflict.value.code == "no_webhook"
    with pytest.raises(shoal.client.JobFailed) as failed:
        shoal_client.say("\u200b")
    assert failed.value.code == "no_speech" and failed.value.job.status is JobStatus.FAILED


def test_cancel_and_a_wait_that_times_out(redis_server: RedisServer, s3_server: SeaweedS3) -> None:
    with gateway(fresh_env(redis_server, s3_server)) as url, Client(url) as client:
        job = client.submit("Nobody will speak this: no worker runs.")
        with pytest.raises(shoal.client.WaitTimedOut) as timed_out:
            client.wait(job.id, seconds=0.3)
        assert timed_out.value.job.status is JobStatus.QUEUED
        assert client.cancel(job.id).status is JobStatus.CANCELED
        assert client.wait(job.id).status is JobStatus.CANCELED
        assert client.queue().queues["tts"].running == 0


def test_voices_are_added_listed_and_removed(shoal_client: Client) -> None:
    voice = shoal_client.create_voice(recording(3.0), "What the recording says.", name="Me")
    assert voice.name == "Me" and voice.duration_seconds == pytest.approx(3.0, abs=0.01)
    assert shoal_client.get_voice(voice.id) == voice
    listed = shoal_client.voices()
    assert listed.engine == "espeak" and voice.id in {v.id for v in listed.cloned_voices}
    shoal_client.delete_voice(voice.id)
    with pytest.raises(shoal.client.NotFound):
        shoal_client.get_voice(voice.id)


def test_the_async_client_does_the_same(live: Live) -> None:
    async def run() -> None:
        async with AsyncClient(live.url) as client:
            job, audio = await client.say("Hello, asynchronously.", format="wav")
            assert_speech(decode_any(audio, "wav"), 22050, 0.8, 5.0)
            streamed = await client.submit("Streamed. Twice.", format="pcm", stream=True)
            data = b"".join([chunk async for chunk in client.stream(streamed.id)])
            assert len(data) > 22050  # over half a second of 16-bit audio
            assert (await client.get(job.id)).status is JobStatus.SUCCEEDED
            with pytest.raises(shoal.client.NotFound):
                await client.cancel("job_nope")
            assert (await client.voices()).engine == "espeak"

    asyncio.run(run())


def test_a_wrong_key_is_unauthorized(live: Live) -> None:
    with (
        gateway(live.env.with_(SHOAL_API_KEYS="the-key")) as url,
        Client(url, api_key="not-the-key") as wrong,
        Client(url, api_key="the-key") as right,
    ):
        with pytest.raises(shoal.client.Unauthorized) as raised:
            wrong.queue()
        assert raised.value.code == "unauthorized"
        assert right.queue().queues["tts"].waiting >= 0


def test_the_public_surface_is_what_all_says() -> None:
    public = {name for name in dir(shoal.client) if not name.startswith("_")}
    modules = {"annotations"} | {name for name in public if name in {"shoal"}}
    assert public - modules == set(shoal.client.__all__)
    assert all(getattr(shoal.client, name) is not None for name in shoal.client.__all__)
