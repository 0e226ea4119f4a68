"""Storage against a real SeaweedFS S3 server that checks every signature."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from shoal.errors import Unavailable
from shoal.jobs import AudioFormat
from shoal.settings import Settings
from shoal.storage import Storage, audio_key


@pytest.fixture
def storage(settings: Settings) -> Storage:
    storage = Storage(settings)
    storage.ensure_bucket()
    return storage


def test_keys_derive_only_from_server_ids() -> None:
    assert audio_key("job_abc", 2, AudioFormat.MP3) == "audio/job_abc/2.mp3"


def test_ensure_bucket_is_idempotent_and_sets_an_expiry_backstop(storage: Storage) -> None:
    storage.ensure_bucket()
    rules = storage._client.get_bucket_lifecycle_configuration(Bucket=storage.bucket)["Rules"]
    assert rules[0]["Expiration"]["Days"] == 2  # 24 h retention, rounded up, plus a day
    assert rules[0]["Filter"]["Prefix"] == "audio/"


def test_put_presign_get_delete(storage: Storage) -> None:
    storage.put("audio/job_x/1.wav", b"RIFF....", "audio/wav")
    url, expires_at = storage.presign("audio/job_x/1.wav", 120)
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == b"RIFF...."
    assert response.headers["content-type"] == "audio/wav"
    assert 100 < expires_at.timestamp() - time.time() <= 121
    storage.delete(["audio/job_x/1.wav"])
    assert httpx.get(url).status_code == 404


def test_a_tampered_presigned_url_is_refused(storage: Storage) -> None:
    storage.put("audio/job_y/1.wav", b"secret", "audio/wav")
    url, _ = storage.presign("audio/job_y/1.wav", 120)
    assert httpx.get(url.replace("job_y", "job_z")).status_code == 403
    query = parse_qs(urlparse(url).query)
    signature = query["X-Amz-Signature"][0]
    forged = url.replace(signature, ("0" if signature[0] != "0" else "1") + signature[1:])
    assert httpx.get(forged).status_code == 403


def test_presigned_urls_name_the_public_endpoint(settings: Settings) -> None:
    public = settings.model_copy(update={"s3_public_endpoint": "https://audio.example.com"})
    url, _ = Storage(public).presign("audio/job_z/1.wav", 60)
    assert url.startswith("https://audio.example.com/")


def test_unreachable_storage_is_unavailable(settings: Settings) -> None:
    dead = settings.model_copy(update={"s3_endpoint": "http://127.0.0.1:9"})
    with pytest.raises(Unavailable) as raised:
        Storage(dead).put("audio/job_q/1.wav", b"x", "audio/wav")
    assert raised.value.code == "storage_unavailable"


def test_optional_get_and_listing_by_prefix(storage: Storage) -> None:
    assert storage.get_optional("voices/voice_x/missing.npy") is None
    storage.put("voices/voice_x/reference.wav", b"ref", "audio/wav")
    storage.put("voices/voice_x/codes-abc.npy", b"codes", "application/octet-stream")
    storage.put("voices/voice_y/reference.wav", b"other", "audio/wav")
    assert storage.get_optional("voices/voice_x/codes-abc.npy") == b"codes"
    assert sorted(storage.keys("voices/voice_x/")) == [
        "voices/voice_x/codes-abc.npy",
        "voices/voice_x/reference.wav",
    ]
    storage.delete(storage.keys("voices/voice_x/"))
    assert storage.keys("voices/voice_x/") == []
    assert storage.keys("voices/") == ["voices/voice_y/reference.wav"]
