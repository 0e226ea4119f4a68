"""Voice cloning end to end: a reference is encoded once, by one worker, and reused.

Two real fish-speech workers, one after the other, on a stack of their own:
the first encodes the reference and persists the codes next to it in S3; the
second loads those codes (its metrics say so, and the object is not written
again) instead of encoding the recording itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from shoal.local.ports import free_port
from shoal.storage import Storage
from tests.conftest import FishStack
from tests.support import (
    decode,
    gateway,
    recording,
    running,
    start_worker_spec,
    storage_settings,
    wait_for_job,
    wait_for_worker,
)

PARAMS = {"max_new_tokens": 24, "seed": 5}


def codes_sources(metrics_port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    found = re.findall(r'shoal_worker_reference_codes_total\{source="(\w+)"\} ([\d.]+)', text)
    return {source: float(count) for source, count in found}


def submit(http: httpx.Client, **body: Any) -> str:
    response = http.post("/v1/jobs", json={"engine_params": PARAMS, **body})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def audio_of(http: httpx.Client, job_id: str) -> bytes:
    done = wait_for_job(http, job_id, timeout=60)
    assert done["status"] == "succeeded", done
    assert done["audio"]["duration_seconds"] == pytest.approx(24 * 2048 / 44100, abs=1e-3)
    return httpx.get(done["audio"]["url"]).content


def test_a_reference_is_encoded_once_and_shared_between_workers(
    fish_stacks: Callable[[int], FishStack],
) -> None:
    stack = fish_stacks(1)
    storage = Storage(storage_settings(stack.env))
    first_port, second_port = free_port(), free_port()
    with gateway(stack.env) as url, httpx.Client(base_url=url, timeout=30) as http:
        voice = http.post(
            "/v1/voices",
            files={"audio": ("me.ogg", recording(3.0, audio_format="OGG"), "audio/ogg")},
            data={"transcript": "A short sentence in my own voice."},
        ).json()
        text = "Say this in the cloned voice."
        first = start_worker_spec(stack.env.with_(SHOAL_WORKER_METRICS_PORT=str(first_port)), "a")
        with running(first):
            wait_for_worker(stack.redis, "a", timeout=120)
            cloned = audio_of(http, submit(http, text=text, voice=voice["id"]))
            plain = audio_of(http, submit(http, text=text))
            again = audio_of(http, submit(http, text=text, voice=voice["id"]))
            assert codes_sources(first_port) == {"encoded": 1.0, "memory": 1.0}
        assert decode(cloned).sample_rate == 44100
        assert cloned != plain  # the reference shapes the speech
        assert cloned == again  # same voice, same seed: same audio
        (codes_key,) = [k for k in storage.keys(f"voices/{voice['id']}/") if "codes-" in k]
        written = storage._client.head_object(Bucket=storage.bucket, Key=codes_key)["ETag"]

        # While no worker runs: one job for the voice, and one for a voice deleted meanwhile.
        queued = submit(http, text=text, voice=voice["id"])
        doomed_voice = http.post(
            "/v1/voices",
            files={"audio": ("x.wav", recording(2.5), "audio/wav")},
            data={"transcript": "Soon gone."},
        ).json()
        doomed = submit(http, text=text, voice=doomed_voice["id"])
        assert http.delete(f"/v1/voices/{doomed_voice['id']}").status_code == 204

        second = start_worker_spec(stack.env.with_(SHOAL_WORKER_METRICS_PORT=str(second_port)), "b")
        with running(second):
            wait_for_worker(stack.redis, "b", timeout=120)
            assert audio_of(http, queued) == cloned  # same codes, same seed
            failed = wait_for_job(http, doomed, timeout=60)
            assert failed["status"] == "failed"
            assert failed["error"]["code"] == "unknown_voice"
            assert codes_sources(second_port) == {"storage": 1.0}  # loaded, not encoded
        assert storage._client.head_object(Bucket=storage.bucket, Key=codes_key)["ETag"] == written
