"""Voices: which voices and languages an engine offers, and cloned voices.

A worker publishes its engine's catalog to Redis when it starts; the gateway
reads it to refuse an unknown voice or language at submit time (a 4xx, nothing
queued) without loading any engine itself. The same `resolve` runs in the
worker, so both sides pick the same voice.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from shoal.errors import InvalidRequest


class Voice(BaseModel):
    id: str = Field(examples=["en-us"])
    name: str = Field(examples=["English (America)"])
    language: str | None = Field(None, description="BCP-47 tag, lower case.", examples=["en-us"])
    engine: str = Field(examples=["espeak"])


class Catalog(BaseModel):
    engine: str
    sample_rate: int
    default_voice: str | None = None
    voices: list[Voice] = Field(default_factory=list)
    languages: dict[str, str] | None = Field(
        None,
        description="Language tag -> voice id. None: the engine reads the language from the text.",
    )
    cloning: bool = Field(False, description="Whether the engine speaks cloned voices.")

    def has_voice(self, voice: str) -> bool:
        return any(v.id == voice for v in self.voices)

    def resolve(self, voice: str | None, language: str | None) -> str | None:
        """The voice id to use; None leaves the choice to the engine (e.g. by script)."""
        if voice is not None:
            if not self.has_voice(voice):
                raise InvalidRequest(
                    f"voice {voice!r} does not exist for the {self.engine} engine; "
                    "GET /v1/voices lists the voices",
                    code="unknown_voice",
                )
            return voice
        if language is None or self.languages is None:
            return None
        subtags = language.lower().split("-")
        for end in range(len(subtags), 0, -1):
            match = self.languages.get("-".join(subtags[:end]))
            if match is not None:
                return match
        raise InvalidRequest(
            f"the {self.engine} engine has no voice for language {language!r}; "
            f"supported: {', '.join(sorted(self.languages))}",
            code="unsupported_language",
        )


class ClonedVoice(BaseModel):
    """A cloned voice as clients see it."""

    id: str = Field(examples=["voice_3q2x7VbV0kO4f1fQ2m9zHw"])
    name: str | None = Field(None, examples=["Narrator"])
    transcript: str = Field(description="What the reference recording says.")
    duration_seconds: float
    sample_rate: int
    format: str = Field(description="Container of the uploaded recording.", examples=["wav"])
    created_at: datetime


class VoiceRecord(ClonedVoice):
    """As stored in Redis: the public fields, where the recording lives, whose it is."""

    audio_key: str
    # The caller id of the API key that made it; None on voices made before owners.
    owner: str | None = None

    def owned_by(self, caller: str) -> bool:
        return self.owner is None or self.owner == caller

    def public(self) -> ClonedVoice:
        return ClonedVoice.model_validate(self.model_dump(exclude={"audio_key", "owner"}))


class VoiceList(BaseModel):
    """GET /v1/voices: what jobs can name."""

    engine: str
    default_voice: str | None
    voices: list[Voice] = Field(description="The engine's own voices.")
    languages: dict[str, str] | None
    cloning: bool = Field(description="Whether this engine speaks cloned voices.")
    cloned_voices: list[ClonedVoice] = Field(description="Voices made with POST /v1/voices.")
