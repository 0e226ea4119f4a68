"""Errors as RFC 9457 problem details, from one place.

Every 4xx and 5xx the gateway sends is `application/problem+json` with a
stable machine-readable `code` and a `detail` a person can act on.
"""

from __future__ import annotations

import math
import re
from typing import Any, get_args

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from pydantic_core.core_schema import ErrorType
from redis import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shoal.errors import ShoalError
from shoal.logs import get_logger
from shoal.redis_client import as_unavailable

log = get_logger(__name__)
PROBLEM_TYPE = "https://github.com/shoal-tts/shoal/blob/main/docs/errors.md#"
MEDIA_TYPE = "application/problem+json"

# Pydantic error types that have a more useful code of their own.
_VALIDATION_CODES = {
    "missing": "missing_field",
    "extra_forbidden": "unknown_field",
    "json_invalid": "malformed_json",
    "model_attributes_type": "invalid_body",
    "dict_type": "invalid_type",
}
_PYDANTIC_TYPES = frozenset(get_args(ErrorType))
_FIELD_CODES = {
    "format": "unsupported_format",
    "response_format": "unsupported_format",
    "language": "invalid_language",
}
_HTTP_CODES = {
    400: "malformed_body",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}


class Problem(BaseModel):
    type: str
    title: str
    status: int
    code: str = Field(description="Stable, machine-readable error code.")
    detail: str = Field(description="What went wrong and what to do about it.")
    errors: list[dict[str, Any]] | None = Field(None, description="Each invalid field.")


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for routes: each status documented as a problem document."""
    return {
        status: {"model": Problem, "content": {"application/problem+json": {}}}
        for status in statuses
    }


def problem_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {
        "type": PROBLEM_TYPE + code,
        "title": code.replace("_", " ").capitalize(),
        "status": status,
        "code": code,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if part != "body") or "body"


def _validation_code(error: dict[str, Any]) -> str:
    kind, loc = str(error["type"]), tuple(error["loc"])
    if kind not in _PYDANTIC_TYPES:
        return kind  # raised by shoal itself (text_empty, text_too_long, ...): already a code
    if "engine_params" in loc:
        return "invalid_parameter"
    if kind in _VALIDATION_CODES:
        return _VALIDATION_CODES[kind]
    if loc and loc[-1] in _FIELD_CODES:
        return _FIELD_CODES[str(loc[-1])]
    if kind.startswith(("greater", "less", "too_", "string_too")):
        return "out_of_range"
    return "invalid_type" if kind.endswith(("_type", "_parsing")) else "invalid_value"


def validation_problems(exc: RequestValidationError) -> tuple[int, list[dict[str, Any]]]:
    """The status (400 for a body that is not JSON, else 422) and each invalid field."""
    errors = [
        {"field": _field(tuple(e["loc"])), "code": _validation_code(e), "message": e["msg"]}
        for e in exc.errors()
    ]
    return (400 if errors[0]["code"] == "malformed_json" else 422), errors


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    status, errors = validation_problems(exc)
    first = errors[0]
    if status == 400:
        return problem_response(
            400, "malformed_json", f"the body is not valid JSON: {first['message']}"
        )
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return problem_response(422, first["code"], detail, errors=errors)


async def _on_shoal_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ShoalError)
    if exc.status >= 500:
        log.error("request failed", code=exc.code, error=exc.message)
    return problem_response(exc.status, exc.code, exc.message, error_headers(exc), **exc.extra)


def error_headers(exc: ShoalError) -> dict[str, str]:
    """What the response to `exc` must say besides its body (its own `headers` included)."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
    headers.update(exc.headers)
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return headers


def _allowed_methods(request: Request) -> str:
    """Every method the path has (Starlette's 405 names only one route's), as documented."""
    path = request.url.path
    methods: set[str] = set()
    for template, operations in request.app.openapi()["paths"].items():
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            methods |= {method.upper() for method in operations}
    return ", ".join(sorted(methods))


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    headers = dict(exc.headers or {})
    detail = str(exc.detail)
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
        detail = f"{request.method} is not allowed here; the path accepts {headers['Allow']}"
    return problem_response(exc.status_code, code, detail, headers)


async def _on_redis_error(request: Request, exc: Exception) -> JSONResponse:
    """Any Redis failure not translated closer to its source."""
    assert isinstance(exc, RedisError)
    return await _on_shoal_error(request, as_unavailable(exc))


async def _on_unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", error=str(exc))
    return problem_response(500, "internal_error", "an unexpected error occurred; it was logged")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(ShoalError, _on_shoal_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RedisError, _on_redis_error)
    app.add_exception_handler(Exception, _on_unexpected)
