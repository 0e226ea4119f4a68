"""Settings: the names and defaults of DESIGN.md, from SHOAL_ variables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shoal.settings import Settings


def test_defaults_match_the_documented_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("SHOAL_"):
            monkeypatch.delenv(name)
    settings = Settings()
    assert settings.port == 8000
    assert settings.workers == 1
    assert settings.engine == "espeak"
    assert settings.fish_codec_config == "modded_dac_vq"
    assert settings.api_keys == []
    assert settings.emulate_rtf == 0
    assert settings.max_text_chars == 5000
    assert settings.retention_seconds == 86_400


def test_comma_separated_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_API_KEYS", " k1, k2 ,,k3")
    monkeypatch.setenv("SHOAL_WEBHOOK_ALLOW_HOSTS", "127.0.0.1,10.0.0.0/8")
    settings = Settings()
    assert settings.api_keys == ["k1", "k2", "k3"]
    assert settings.webhook_allow_hosts == ["127.0.0.1", "10.0.0.0/8"]


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_ENGINE", "festival")
    with pytest.raises(ValidationError, match="engine"):
        Settings()


def test_visibility_timeout_outlasts_the_longest_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_JOB_TIMEOUT_SECONDS", "900")
    assert Settings().visibility_timeout > 900


def test_fish_speech_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("SHOAL_"):
            monkeypatch.delenv(name)
    settings = Settings()
    assert (settings.fish_device, settings.fish_precision) == ("auto", "bf16")
    assert settings.fish_compile is True and settings.fish_compile_cache_dir is None
    assert settings.fish_reference_cache_size == 64
    monkeypatch.setenv("SHOAL_FISH_COMPILE", "false")
    monkeypatch.setenv("SHOAL_FISH_COMPILE_CACHE_DIR", "/cache/torch")
    settings = Settings()
    assert settings.fish_compile is False and str(settings.fish_compile_cache_dir) == "/cache/torch"
    monkeypatch.setenv("SHOAL_FISH_PRECISION", "int4")
    with pytest.raises(ValidationError, match="fish_precision"):
        Settings()


def test_openai_voice_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_OPENAI_VOICES", " Alloy=en-us , nova=voice_abc,,")
    assert Settings().openai_voices == {"alloy": "en-us", "nova": "voice_abc"}
    monkeypatch.setenv("SHOAL_OPENAI_VOICES", "alloy")
    with pytest.raises(ValidationError, match="not name=voice"):
        Settings()
    monkeypatch.delenv("SHOAL_OPENAI_VOICES")
    assert Settings().openai_voices == {}
    assert Settings().sync_wait_seconds == 120 and Settings().audio_stream_ttl_seconds == 600
