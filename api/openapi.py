"""The OpenAPI document as this gateway really behaves.

FastAPI's document is built once from the routes, but part of the truth is in
the settings: with no API key configured (nor any managed key made), no route
asks for one; `/metrics` asks for its token only when SHOAL_METRICS_TOKEN is
set; the longest text is SHOAL_MAX_TEXT_CHARS. The document is therefore
served by this route (the pages in api.routes.docs read it), which drops the
security requirements that are off here and writes in the limits, so generated
clients and schema-driven testers (schemathesis) see what this gateway really accepts.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import ServicesDep
from shoal.settings import Settings

API_KEY_SCHEME = "HTTPBearer"
METRICS_SCHEME = "MetricsToken"
OPENAPI_URL = "/openapi.json"
# The text to speak in each request body: not empty, not only whitespace, not too long.
# (Fish Speech's body is written inline, once per media type.)
TEXT_FIELDS = [("JobRequest", "text"), ("SpeechRequest", "input")]
router = APIRouter(include_in_schema=False)


def without_schemes(schema: dict[str, Any], off: set[str]) -> dict[str, Any]:
    """The document with the security schemes in `off` removed, and their 401s."""
    if not off:
        return schema
    schema = copy.deepcopy(schema)
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            required = operation.get("security")
            if required is None:
                continue
            kept = [req for req in required if not set(req) & off]
            if kept:
                operation["security"] = kept
            else:
                del operation["security"]
                operation.get("responses", {}).pop("401", None)
    schemes = schema.get("components", {}).get("securitySchemes", {})
    for name in off:
        schemes.pop(name, None)
    return schema


def with_limits(schema: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The settings' input limits written into the request body's schema."""
    schema = copy.deepcopy(schema)
    models = schema["components"]["schemas"]
    texts = [models[model]["properties"][field] for model, field in TEXT_FIELDS if model in models]
    fish_body = schema["paths"].get("/v1/tts", {}).get("post", {}).get("requestBody", {})
    texts += [
        media["schema"]["properties"]["text"] for media in fish_body.get("content", {}).values()
    ]
    for text in texts:
        text.update(minLength=1, maxLength=settings.max_text_chars, pattern=r"\S")
    return schema


@router.get(OPENAPI_URL)
async def openapi(request: Request, services: ServicesDep) -> JSONResponse:
    off = set()
    if not await services.keyring.required():
        off.add(API_KEY_SCHEME)
    if not services.settings.metrics_token:
        off.add(METRICS_SCHEME)
    schema = with_limits(request.app.openapi(), services.settings)
    return JSONResponse(without_schemes(schema, off))
