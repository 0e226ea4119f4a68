"""A webhook receiver inside the Locust process: users wait for their job's event.

It verifies every delivery (Standard Webhooks, `shoal.webhooks.verify`), answers
204 at once, and hands the job to the user waiting for it. An event may arrive
before its user starts waiting (a fast job): it is kept until asked for.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from gevent import Timeout
from gevent.event import AsyncResult
from gevent.pywsgi import WSGIServer

from shoal.webhooks import InvalidSignature, verify

TERMINAL_EVENTS = ("job.succeeded", "job.failed", "job.canceled")
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class Receiver:
    def __init__(self, host: str, port: int, secrets: list[str]) -> None:
        self.secrets = secrets
        self._jobs: dict[str, AsyncResult] = {}
        self.rejected = 0
        self.server = WSGIServer((host, port), self._app, log=None, error_log=None)

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop(timeout=1)

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def wait(self, job_id: str, timeout: float) -> dict[str, Any] | None:
        """The job as its terminal event carried it, or None after `timeout`."""
        result = self._result(job_id)
        try:
            job: dict[str, Any] | None = result.get(timeout=timeout)
        except Timeout:
            job = None
        finally:
            self._jobs.pop(job_id, None)
        return job

    def _result(self, job_id: str) -> AsyncResult:
        return self._jobs.setdefault(job_id, AsyncResult())

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        try:
            verify(headers, body, self.secrets)
            event = json.loads(body)
        except (InvalidSignature, ValueError):
            self.rejected += 1
            start_response("400 Bad Request", [("content-length", "0")])
            return [b""]
        if event.get("type") in TERMINAL_EVENTS:
            self._result(event["data"]["id"]).set(event["data"])
        start_response("204 No Content", [])
        return [b""]
