"""The playground at `/` and the API reference, in a real headless Chromium.

A gateway with auth on and a worker whose jobs take about as long as their
audio (SHOAL_EMULATE_RTF=1), so the page has time to show `running`. The
browser resolves no host but loopback ones (tests/browser.py): all of it works
offline.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from selenium import webdriver
from selenium.webdriver.common.by import By

from shoal import keys
from shoal.local.redis_server import RedisServer
from shoal.local.s3_server import SeaweedS3
from tests.browser import chromium, wait_until
from tests.conftest import fresh_env
from tests.support import (
    assert_speech,
    decode,
    gateway,
    recording,
    running,
    start_worker_spec,
    wait_for_worker,
)

KEY = "playground-key-1"
WORKER = "tts-playground@tests"


@dataclass
class Page:
    url: str
    browser: webdriver.Chrome
    redis: redis.Redis

    def text(self, element_id: str) -> str:
        return str(self.browser.find_element(By.ID, element_id).text)

    def js(self, script: str, *args: Any) -> Any:
        return self.browser.execute_script(script, *args)


@pytest.fixture(scope="module")
def page(
    redis_server: RedisServer, s3_server: SeaweedS3, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Page]:
    # A bucket of its own: the voice it clones must not show in other tests' listings.
    env = fresh_env(redis_server, s3_server).with_(
        SHOAL_API_KEYS=KEY, SHOAL_S3_BUCKET="shoal-playground"
    )
    client = redis.Redis.from_url(env.values["SHOAL_REDIS_URL"], decode_responses=True)
    with ExitStack() as stack:
        url = stack.enter_context(gateway(env))
        stack.enter_context(running(start_worker_spec(env.with_(SHOAL_EMULATE_RTF="1"), WORKER)))
        wait_for_worker(client, WORKER)
        browser = stack.enter_context(chromium(tmp_path_factory.mktemp("chromium")))
        browser.set_script_timeout(30)
        yield Page(url, browser, client)
    client.close()


def _use_key(page: Page) -> None:
    page.browser.get(page.url + "/")
    page.js("sessionStorage.clear()")  # as a new tab: the key must be given again
    page.browser.refresh()
    # Auth is on and no key was given yet: the page says what to do.
    wait_until(lambda: "API key" in page.text("problem"), "the page asks for an API key")
    page.browser.find_element(By.ID, "api-key").send_keys(KEY)
    page.browser.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
    wait_until(
        lambda: page.js("return document.querySelector('#voice option[value=\"en-us\"]')"),
        "the engine's voices are offered",
    )
    assert page.js("return sessionStorage.getItem('shoal.apiKey')") == KEY
    assert page.js("return localStorage.length + document.cookie.length") == 0
    assert page.browser.find_element(By.ID, "problem").get_attribute("hidden") is not None


def test_a_job_submitted_in_the_page_plays_back(page: Page) -> None:
    _use_key(page)
    formats = page.js("return [...document.querySelectorAll('#format option')].map(o => o.value)")
    assert {"wav", "mp3", "flac", "ogg"} <= set(formats)
    text = page.browser.find_element(By.ID, "text")
    text.clear()
    text.send_keys("The playground speaks, and the browser plays it back.")
    page.js("document.getElementById('format').value = 'mp3'")
    page.browser.find_element(By.ID, "submit").click()

    wait_until(lambda: page.text("job-status") == "succeeded", "the job succeeds", timeout=60)
    seen = page.js(
        "return [...document.querySelectorAll('#timeline li')].map(li => li.dataset.status)"
    )
    assert seen == ["queued", "running", "succeeded"]
    job_id = page.text("job-id")
    assert page.redis.hget(keys.job(job_id), "request_id") == page.text("request-id")
    job = httpx.get(
        f"{page.url}/v1/jobs/{job_id}", headers={"authorization": f"Bearer {KEY}"}
    ).json()

    # The audio element decoded the file: its duration is the job's, and it plays.
    duration = wait_until(
        lambda: page.js(
            "const a = document.getElementById('player');"
            "return a.readyState >= 2 && isFinite(a.duration) ? a.duration : null"
        ),
        "the audio element loads the audio",
    )
    assert duration == pytest.approx(job["audio"]["duration_seconds"], abs=0.1)
    played = page.browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const a = document.getElementById('player');"
        "a.play().then(() => setTimeout(() => done(a.currentTime), 800), e => done(String(e)));"
    )
    assert isinstance(played, float) and played > 0.2, played
    assert page.js("return document.getElementById('player').error") is None

    link = page.browser.find_element(By.ID, "download")
    assert link.get_attribute("download") == f"{job_id}.mp3"
    audio = decode(httpx.get(link.get_attribute("href") or "").content)
    assert_speech(audio, 22050, 1.5, 10)


def test_cloning_a_voice_and_seeing_the_queue(page: Page, tmp_path: Path) -> None:
    _use_key(page)
    reference = tmp_path / "me.wav"
    reference.write_bytes(recording(3.0))
    page.browser.find_element(By.ID, "voice-audio").send_keys(str(reference))
    page.browser.find_element(By.ID, "voice-name").send_keys("Narrator")
    page.browser.find_element(By.ID, "voice-transcript").send_keys("What the recording says.")
    page.browser.find_element(By.CSS_SELECTOR, "#voice-form button[type=submit]").click()
    wait_until(lambda: "Narrator" in page.text("cloned"), "the cloned voice is listed")
    chosen = page.js("return document.getElementById('voice').value")
    assert chosen.startswith("voice_")
    voices = httpx.get(f"{page.url}/v1/voices", headers={"authorization": f"Bearer {KEY}"}).json()
    assert [v["id"] for v in voices["cloned_voices"]] == [chosen]

    wait_until(lambda: WORKER in page.text("workers"), "the worker is listed")
    queues = page.js(
        "return [...document.querySelectorAll('#queues tbody tr')].map(r => r.dataset.queue)"
    )
    assert sorted(queues) == ["tts", "webhooks"]


def test_the_api_reference_renders_offline(page: Page) -> None:
    page.browser.get(page.url + "/docs")
    wait_until(
        lambda: (
            "/v1/jobs"
            in page.js(
                "return [...document.querySelectorAll('.opblock-summary-path')]"
                ".map(e => e.textContent).join(' ')"
            )
        ),
        "Swagger UI lists the operations",
    )
    _loaded_only_from(page)
    page.browser.get(page.url + "/redoc")
    wait_until(
        lambda: "Submit a synthesis job" in page.js("return document.body.innerText"),
        "ReDoc renders the operations",
    )
    _loaded_only_from(page)


def _loaded_only_from(page: Page) -> None:
    resources = page.js(
        "return performance.getEntriesByType('resource')"
        ".map(e => [e.name, e.initiatorType, e.responseStatus, e.transferSize])"
    )
    local = [r for r in resources if r[0].startswith(page.url)]
    assert {"script", "fetch"} <= {r[1] for r in local}, resources
    assert all(r[2] == 200 for r in local), resources
    # What is not local is decoration that never loaded (ReDoc's logo, which the
    # page's Content-Security-Policy blocks), never a script, style or document.
    for name, initiator, status, size in resources:
        if not name.startswith(page.url):
            assert initiator == "img" and status == 0 and size == 0, resources


def test_the_page_is_public_but_the_api_behind_it_is_not(page: Page) -> None:
    served = httpx.get(page.url + "/")
    assert served.status_code == 200 and served.headers["content-type"].startswith("text/html")
    policy = served.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    for asset in ("/playground/playground.js", "/playground/playground.css"):
        assert httpx.get(page.url + asset).status_code == 200, asset
    assert httpx.get(page.url + "/v1/queue").status_code == 401
