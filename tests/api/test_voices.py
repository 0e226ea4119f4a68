"""/v1/voices: cloned voices through a real gateway, Redis and SeaweedFS.

Uploads are validated before anything is stored; a voice lives as a Redis
record plus objects under voices/<id>/, and is gone, objects too, once deleted.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shoal import keys
from shoal.storage import Storage
from tests.conftest import Live
from tests.support import recording, storage_settings

TRANSCRIPT = "This is how my voice sounds when I read aloud."


def upload(
    client: httpx.Client,
    audio: bytes | None = None,
    transcript: str | None = TRANSCRIPT,
    **extra: str,
) -> httpx.Response:
    files = {"audio": ("reference.wav", audio, "audio/wav")} if audio is not None else {}
    data = {**({"transcript": transcript} if transcript is not None else {}), **extra}
    return client.post("/v1/voices", files=files or None, data=data)


def voice_objects(live: Live, voice_id: str) -> list[str]:
    return Storage(storage_settings(live.env)).keys(f"voices/{voice_id}/")


@pytest.mark.parametrize(
    ("audio", "transcript", "code"),
    [
        (b"RIFF this is not audio at all", TRANSCRIPT, "invalid_audio"),
        (recording(1.0), TRANSCRIPT, "audio_too_short"),
        (recording(31.0, sample_rate=8000), TRANSCRIPT, "audio_too_long"),
        (recording(3.0, loudness=0.0), TRANSCRIPT, "audio_silent"),
        (recording(3.0), "   \n ", "transcript_empty"),
        (recording(3.0), "x" * 1001, "transcript_too_long"),
        (recording(3.0), None, "missing_field"),
        (None, TRANSCRIPT, "missing_field"),
    ],
    ids=["undecodable", "short", "long", "silent", "blank", "wordy", "no-transcript", "no-audio"],
)
def test_a_bad_reference_is_refused_and_nothing_is_stored(
    fish_client: httpx.Client,
    fish_live: Live,
    audio: bytes | None,
    transcript: str | None,
    code: str,
) -> None:
    before = fish_live.redis.zcard(keys.VOICES)
    response = upload(fish_client, audio, transcript)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == code
    assert problem["detail"]
    assert fish_live.redis.zcard(keys.VOICES) == before


def test_a_voice_is_created_listed_and_deleted_with_its_objects(
    fish_client: httpx.Client, fish_live: Live
) -> None:
    audio = recording(4.0, sample_rate=48000, channels=2, audio_format="FLAC")
    response = upload(fish_client, audio, f"  {TRANSCRIPT}  ", name="Narrator")
    assert response.status_code == 201, response.text
    voice: dict[str, Any] = response.json()
    voice_id = voice["id"]
    assert response.headers["location"] == f"/v1/voices/{voice_id}"
    assert voice_id.startswith("voice_") and len(voice_id) >= 26
    assert voice["transcript"] == TRANSCRIPT and voice["name"] == "Narrator"
    assert voice["format"] == "flac" and voice["sample_rate"] == 48000
    assert voice["duration_seconds"] == pytest.approx(4.0, abs=0.01)
    assert "audio_key" not in voice
    assert voice_objects(fish_live, voice_id) == [f"voices/{voice_id}/reference.flac"]

    listed = fish_client.get("/v1/voices").json()
    assert voice_id in {v["id"] for v in listed["cloned_voices"]}
    assert fish_client.get(f"/v1/voices/{voice_id}").json() == voice

    assert fish_client.delete(f"/v1/voices/{voice_id}").status_code == 204
    for call in (fish_client.get, fish_client.delete):
        gone = call(f"/v1/voices/{voice_id}")
        assert gone.status_code == 404 and gone.json()["code"] == "voice_not_found"
    assert voice_objects(fish_live, voice_id) == []
    assert voice_id not in {v["id"] for v in fish_client.get("/v1/voices").json()["cloned_voices"]}
    job = fish_client.post("/v1/jobs", json={"text": "Hi", "voice": voice_id})
    assert job.status_code == 422 and job.json()["code"] == "unknown_voice"


def test_espeak_refuses_cloned_voices_clearly(client: httpx.Client) -> None:
    created = upload(client, recording(3.0)).json()
    try:
        voices = client.get("/v1/voices").json()
        assert voices["engine"] == "espeak" and voices["cloning"] is False
        assert created["id"] in {v["id"] for v in voices["cloned_voices"]}
        response = client.post("/v1/jobs", json={"text": "Hi", "voice": created["id"]})
        assert response.status_code == 422
        problem = response.json()
        assert problem["code"] == "voice_not_supported"
        assert "cannot speak cloned voices" in problem["detail"]
    finally:
        assert client.delete(f"/v1/voices/{created['id']}").status_code == 204
