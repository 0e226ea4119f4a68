"""Refuse request bodies larger than the gateway will read (413, `body_too_large`).

Checked against Content-Length before reading and again while streaming, so a
client that lies about the length or sends chunks is cut off too.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem_response


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, path_limits: dict[str, int]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = path_limits  # path prefix -> its own limit (uploads)

    def _limit(self, path: str) -> int:
        for prefix, limit in self.path_limits.items():
            if path.startswith(prefix):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope["path"])
        detail = f"the request body is larger than {limit} bytes"
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            response = problem_response(413, "body_too_large", detail)
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, detail)
            return message

        await self.app(scope, limited_receive, send)
