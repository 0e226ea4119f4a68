"""Each request observed once: its request id, its metrics and its log line.

The request id is the client's `X-Request-ID` when it is a sane token, else a
new one. It is echoed on the response, bound to every log line of the request
(structlog context variables) and kept in `scope["state"]`, where the submit
route reads it to store it with the job: the worker and the webhook sender log
it too, so one id greps a job's whole life.

A few lines of ASGI rather than prometheus-fastapi-instrumentator, which
matched every request against every route a second time: it cost about a fifth
of the gateway's CPU per submit (see docs/benchmarks.md). The route template
(`/v1/jobs/{job_id}`, never the raw path) is read from the route the router
already matched.
"""

from __future__ import annotations

import logging
import re
import secrets
import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import HTTP_REQUESTS, HTTP_SECONDS
from shoal.logs import REQUEST_ID_HEADER, get_logger

log = get_logger("api.access")
_UNTRACKED = frozenset({"/metrics", "/healthz", "/readyz"})
_HEADER = REQUEST_ID_HEADER.encode()
# What we accept from clients: a token that is safe to log and to put in a header.
_VALID_ID = re.compile(rb"^[A-Za-z0-9._:@/+=-]{1,128}$")


def new_request_id() -> str:
    return secrets.token_hex(16)


def _incoming_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == _HEADER:
            return value.decode() if _VALID_ID.match(value) else new_request_id()
    return new_request_id()


def request_id(scope: Scope) -> str:
    """The id `RequestObserver` gave this request ("" outside it, e.g. in unit tests)."""
    return str(scope.get("state", {}).get("request_id", ""))


class RequestObserver:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _incoming_id(scope)
        scope.setdefault("state", {})["request_id"] = rid
        header = (_HEADER, rid.encode())
        tracked = scope["path"] not in _UNTRACKED
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=rid):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                if tracked:
                    self._observe(scope, status, time.perf_counter() - started)

    @staticmethod
    def _observe(scope: Scope, status: int, seconds: float) -> None:
        # FastAPI's routes put themselves in the scope; the OpenAPI document and the
        # mounted files do not, and are named by their path (they exist: status < 400).
        route = getattr(scope.get("route"), "path", None)
        if route is None:
            route = scope["path"] if status < 400 else "unmatched"
        method = scope["method"]
        HTTP_REQUESTS.labels(method, route, str(status)).inc()
        HTTP_SECONDS.labels(method, route).observe(seconds)
        if log.isEnabledFor(logging.INFO):  # skips building the line's arguments below INFO
            log.info(
                "request",
                method=method,
                route=route,
                path=scope["path"],
                status=status,
                ms=round(seconds * 1000, 2),
            )
