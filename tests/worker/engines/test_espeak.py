"""The espeak engine: real libespeak-ng speech, voices and languages."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from shoal.errors import InvalidRequest
from worker.engines.base import SynthesisRequest
from worker.engines.espeak import EspeakEngine, detect_language


@pytest.fixture(scope="module")
def engine() -> EspeakEngine:
    return EspeakEngine()


def test_catalog_lists_real_voices_and_languages(engine: EspeakEngine) -> None:
    catalog = engine.catalog()
    assert catalog.engine == "espeak"
    assert catalog.sample_rate == 22050
    assert len(catalog.voices) > 100
    ids = {voice.id for voice in catalog.voices}
    assert {"en-us", "de", "fr", "cmn", "ja", "ar"} <= ids
    assert catalog.default_voice == "en-us"


@pytest.mark.parametrize(
    ("language", "voice"),
    [
        ("en", "en-us"),
        ("en-US", "en-us"),
        ("de", "de"),
        ("de-AT", "de"),
        ("zh", "cmn"),
        ("zh-Hans-CN", "cmn"),
        ("zh-HK", "yue"),
        ("ja-JP", "ja"),
        ("ar", "ar"),
    ],
)
def test_bcp47_tags_pick_a_voice(engine: EspeakEngine, language: str, voice: str) -> None:
    assert engine.catalog().resolve(None, language) == voice


def test_an_unsupported_language_is_refused(engine: EspeakEngine) -> None:
    with pytest.raises(InvalidRequest) as raised:
        engine.catalog().resolve(None, "tlh")
    assert raised.value.code == "unsupported_language"
    with pytest.raises(InvalidRequest) as unknown:
        engine.catalog().resolve("klingon", None)
    assert unknown.value.code == "unknown_voice"


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("你好世界", "zh"),
        ("こんにちは、世界", "ja"),
        ("Привет, мир", "ru"),
        ("مرحبا", "ar"),
        ("Hello world", None),
        ("東京へ行きます", "ja"),
    ],
)
def test_script_detection(text: str, language: str | None) -> None:
    assert detect_language(text) == language


def test_speech_is_real_and_scales_with_text(engine: EspeakEngine) -> None:
    short = engine.synthesize(SynthesisRequest("Hello."))
    long = engine.synthesize(SynthesisRequest("Hello. " * 10))
    assert short.sample_rate == 22050
    assert short.samples.dtype == np.float32
    assert 0.3 < short.duration_seconds < 2.0
    assert long.duration_seconds > 5 * short.duration_seconds
    assert float(np.sqrt(np.mean(short.samples**2))) > 0.01
    assert np.abs(long.samples).max() <= 1.0


def test_a_stop_request_aborts_synthesis(engine: EspeakEngine) -> None:
    stop = threading.Event()
    stop.set()
    text = "A very long text that would take a while to speak. " * 50
    stopped = engine.synthesize(SynthesisRequest(text, should_stop=stop.is_set))
    full = engine.synthesize(SynthesisRequest(text))
    assert stopped.duration_seconds < full.duration_seconds / 10


def test_a_long_text_is_spoken_and_handed_over_chunk_by_chunk(engine: EspeakEngine) -> None:
    pieces: list[np.ndarray] = []
    text = "One short sentence. " * 5 + "Then a much longer one, with a clause or two in it. " * 3
    speech = engine.synthesize(SynthesisRequest(text, on_audio=pieces.append))
    assert len(pieces) >= 2  # whole sentences, up to 100 characters each
    assert np.array_equal(np.concatenate(pieces), speech.samples)
    assert all(float(np.abs(piece).max()) > 0.01 for piece in pieces)
