"""/v1/voices: the voices jobs can name."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from api.deps import ServicesDep, api_key
from shoal.voices import Voice

router = APIRouter(prefix="/v1/voices", tags=["voices"], dependencies=[Depends(api_key)])


class VoiceList(BaseModel):
    engine: str
    default_voice: str | None
    voices: list[Voice]
    languages: dict[str, str] | None


@router.get("", summary="List voices")
async def list_voices(services: ServicesDep) -> VoiceList:
    """The engine's voices, as its workers published them (empty before any worker started)."""
    catalog = await services.catalog()
    if catalog is None:
        return VoiceList(
            engine=services.settings.engine, default_voice=None, voices=[], languages=None
        )
    return VoiceList(
        engine=catalog.engine,
        default_voice=catalog.default_voice,
        voices=catalog.voices,
        languages=catalog.languages,
    )
