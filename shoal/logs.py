"""Structured logs: JSON lines in production, readable lines on a terminal.

structlog renders our own events and, through the standard library bridge,
those of uvicorn, Celery and boto3, so every line has the same shape. Code
binds `job_id` with `bind_job` and the submit's `request_id` with
`bind_request`, and every line logged while they are bound carries them: the
gateway binds the request id of each request, the worker and the webhook
sender the one stored with the job, so one id greps a job's whole life.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:  # shoal.settings imports modules that log
    from shoal.settings import Settings

# The header that carries a request's id in, out, and on to the job's webhooks.
REQUEST_ID_HEADER = "x-request-id"


def _stamp(component: str) -> structlog.types.Processor:
    """Every line names its process: a processor, not a context variable, because
    context variables bound in the main thread are not seen by Celery's pool threads."""

    def add(
        _: structlog.types.WrappedLogger, __: str, event: structlog.types.EventDict
    ) -> structlog.types.EventDict:
        event.setdefault("component", component)
        return event

    return add


def configure_logging(settings: Settings, component: str) -> None:
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        _stamp(component),
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if settings.log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        # Below the level, a line is dropped before any processor runs (about 1 us, not 20).
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for own_handlers in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn set up plain-text handlers before it loaded the app: one shape for all.
        logging.getLogger(own_handlers).handlers.clear()
        logging.getLogger(own_handlers).propagate = True
    logging.captureWarnings(True)  # warnings as log lines, not bare text on stderr
    structlog.contextvars.clear_contextvars()


@contextmanager
def bind_job(job_id: str) -> Iterator[None]:
    with structlog.contextvars.bound_contextvars(job_id=job_id):
        yield


@contextmanager
def bind_request(request_id: str | None) -> Iterator[None]:
    if request_id is None:
        yield
        return
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        yield


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
