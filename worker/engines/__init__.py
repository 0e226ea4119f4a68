"""TTS engines, one module each; `load_engine` picks one by name."""

from __future__ import annotations

from shoal.settings import Settings
from shoal.voice_store import VoiceStore
from worker.engines.base import Engine, Speech, SynthesisRequest
from worker.engines.emulation import EmulatedGpuTime

__all__ = ["Engine", "Speech", "SynthesisRequest", "load_engine"]


def load_engine(settings: Settings, voices: VoiceStore) -> Engine:
    """Load the configured engine; raises with a clear message when it cannot start.

    `voices` is the worker's cloned-voice store, for engines that clone.
    """
    engine: Engine
    if settings.engine == "espeak":
        from worker.engines.espeak import EspeakEngine

        engine = EspeakEngine()
    elif settings.engine == "tone":
        from worker.engines.tone import ToneEngine

        engine = ToneEngine()
    else:
        from worker.engines.fish import FishSpeechEngine

        engine = FishSpeechEngine.from_settings(settings, voices)
    if settings.emulate_rtf > 0:
        engine = EmulatedGpuTime(engine, settings.emulate_rtf)
    return engine
