"""Errors in OpenAI's shape, for the routes OpenAI's clients call.

    {"error": {"message": "...", "type": "invalid_request_error", "param": "voice",
               "code": "unknown_voice"}}

`code` is shoal's stable code (docs/errors.md); validation errors are 400, as
OpenAI answers them, so its clients raise `BadRequestError`. A route class
catches what the route and its dependencies raise, so the rest of the gateway
keeps RFC 9457 problem details.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from redis import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.problems import error_headers, validation_problems
from shoal.errors import ShoalError, Unavailable
from shoal.logs import get_logger

log = get_logger(__name__)
# Shoal's field names -> the names OpenAI's body uses for them.
FIELD_NAMES = {"text": "input", "format": "response_format"}


def _type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 429:
        return "rate_limit_error"
    return "server_error" if status >= 500 else "invalid_request_error"


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str


class OpenAIError(BaseModel):
    error: OpenAIErrorDetail


def openai_error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these statuses in OpenAI's shape (a 422 is answered as 400)."""
    return {400 if s == 422 else s: {"model": OpenAIError} for s in statuses}


def openai_error(
    status: int,
    code: str,
    message: str,
    param: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    status = 400 if status == 422 else status
    body = {"message": message, "type": _type(status), "param": param, "code": code, **extra}
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _from_validation(exc: RequestValidationError) -> JSONResponse:
    status, problems = validation_problems(exc)
    first = problems[0]
    field = ".".join(FIELD_NAMES.get(part, part) for part in first["field"].split("."))
    message = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    for shoal_name, openai_name in FIELD_NAMES.items():
        message = message.replace(f"{shoal_name}:", f"{openai_name}:")
    return openai_error(status, first["code"], message, None if field == "body" else field)


def _from_shoal(exc: ShoalError) -> JSONResponse:
    if exc.status >= 500:
        log.error("request failed", code=exc.code, error=exc.message)
    extra = dict(exc.extra)
    param = extra.pop("param", None)
    return openai_error(exc.status, exc.code, exc.message, param, error_headers(exc), **extra)


class OpenAIRoute(APIRoute):
    """An APIRoute whose errors, its dependencies' included, come in OpenAI's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return _from_validation(exc)
            except ShoalError as exc:
                return _from_shoal(exc)
            except RedisError as exc:
                unavailable = Unavailable(f"Redis is unreachable: {exc}", code="redis_unavailable")
                return _from_shoal(unavailable)
            except StarletteHTTPException as exc:  # e.g. the body-size limit, while reading
                code = "body_too_large" if exc.status_code == 413 else f"http_{exc.status_code}"
                return openai_error(exc.status_code, code, str(exc.detail))

        return route
