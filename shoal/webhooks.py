"""Webhooks as Standard Webhooks 1.0 defines them: sign, verify, send one attempt.

Each event is POSTed with the headers `webhook-id` (the same on every retry of
one event, so receivers can deduplicate), `webhook-timestamp` (Unix seconds of
this attempt) and `webhook-signature`: `v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">`, one per current secret, space-separated, so
secrets rotate without a gap. Receivers verify with `verify` (or any Standard
Webhooks library).

Retry policy lives with the delivery (worker.webhook_delivery); this module
only classifies what one attempt returned.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Literal
from urllib.parse import SplitResult

import httpx
from pydantic import BaseModel, Field, field_validator

from shoal.logs import get_logger
from shoal.ssrf import IPAddress, parse_url

SECRET_PREFIX = "whsec_"
TOLERANCE_SECONDS = 300
USER_AGENT = "shoal-webhooks/1"
log = get_logger(__name__)


class WebhookEvent(StrEnum):
    STARTED = "job.started"
    SUCCEEDED = "job.succeeded"
    FAILED = "job.failed"
    CANCELED = "job.canceled"


TERMINAL_EVENTS = [WebhookEvent.SUCCEEDED, WebhookEvent.FAILED, WebhookEvent.CANCELED]


class WebhookSpec(BaseModel):
    """Where and for which events a job's webhook is sent."""

    url: str = Field(examples=["https://example.com/hooks/tts"], max_length=2048)
    events: list[WebhookEvent] = Field(
        default_factory=lambda: list(TERMINAL_EVENTS),
        min_length=1,
        description="Default: the terminal events.",
    )

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, url: str) -> str:
        parse_url(url)
        return url

    @field_validator("events")
    @classmethod
    def _unique(cls, events: list[WebhookEvent]) -> list[WebhookEvent]:
        return list(dict.fromkeys(events))


class DeliveryState(StrEnum):
    PENDING = "pending"  # waiting for its next attempt
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up: a 4xx, a refused address, or every retry used
    DISABLED = "disabled"  # the receiver answered 410 Gone for this URL


class WebhookStatus(BaseModel):
    """A job's webhook and how its latest event's delivery stands."""

    url: str
    events: list[WebhookEvent]
    event: WebhookEvent | None = Field(None, description="The latest event sent or to send.")
    state: DeliveryState | None = None
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    next_attempt_at: float | None = Field(None, description="Unix time of the next attempt.")


# --- signing ------------------------------------------------------------------


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret; ValueError when it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as exc:
        raise ValueError("a webhook secret is whsec_ followed by base64") from exc
    if not 24 <= len(key) <= 64:
        raise ValueError("a webhook secret holds 24 to 64 bytes")
    return key


def new_webhook_id() -> str:
    return "msg_" + _secrets.token_urlsafe(16)


def _signature(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def sign(webhook_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> str:
    """The `webhook-signature` header: one signature per secret."""
    return " ".join(_signature(secret_key(s), webhook_id, timestamp, body) for s in secrets)


def signed_headers(webhook_id: str, body: bytes, secrets: Sequence[str]) -> dict[str, str]:
    timestamp = int(time.time())
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(webhook_id, timestamp, body, secrets),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


class InvalidSignature(ValueError):
    """The webhook is not authentic, or too old: reject it (400)."""


def verify(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    tolerance_seconds: int = TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Check a received webhook; raises InvalidSignature, returns None when authentic.

    For receivers: pass the raw request body (before any JSON parsing) and the
    headers (any case). The timestamp must be within `tolerance_seconds` of now,
    which bounds replays; deduplicate on `webhook-id` for the rest.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        webhook_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        offered = lowered["webhook-signature"].split()
    except (KeyError, ValueError) as exc:
        raise InvalidSignature("missing or malformed webhook headers") from exc
    if abs((now if now is not None else time.time()) - timestamp) > tolerance_seconds:
        raise InvalidSignature("webhook timestamp is outside the tolerance")
    for secret in secrets:
        expected = _signature(secret_key(secret), webhook_id, timestamp, body)
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return
    raise InvalidSignature("no signature matches")


# --- one attempt ----------------------------------------------------------------

Verdict = Literal["delivered", "retry", "give_up", "gone"]
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class AttemptResult:
    verdict: Verdict
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds the receiver asked us to wait


def classify(response: httpx.Response) -> AttemptResult:
    code = response.status_code
    if 200 <= code < 300:
        return AttemptResult("delivered", code)
    if code == 410:
        return AttemptResult("gone", code, "the receiver answered 410 Gone: URL disabled")
    if 300 <= code < 400:
        target = response.headers.get("location", "?")
        return AttemptResult("give_up", code, f"redirect to {target} not followed")
    if code in RETRY_STATUSES or code >= 500:
        return AttemptResult("retry", code, f"HTTP {code}", _retry_after(response))
    return AttemptResult("give_up", code, f"HTTP {code}: the receiver refused the webhook")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def no_response(timeout: float) -> str:
    """What a client sees of any attempt that got no HTTP response: the same words
    whatever the socket said (refused, reset, unreachable, TLS, timeout), so
    webhooks cannot be used to probe which ports of a host are open."""
    return f"no HTTP response from the receiver within {timeout:g} s"


def _through(parts: SplitResult, address: IPAddress) -> str:
    literal = f"[{address}]" if address.version == 6 else str(address)
    return parts._replace(netloc=literal + (f":{parts.port}" if parts.port else "")).geturl()


def post(
    client: httpx.Client,
    url: str,
    addresses: Sequence[IPAddress],
    body: bytes,
    headers: dict[str, str],
    timeout: float,
) -> AttemptResult:
    """POST to `url` through the already-checked addresses; never follows redirects.

    Each address is tried in turn until one accepts the connection (a host with
    a dead IPv6 address and a live IPv4 one still gets its webhook). The
    socket's own error is logged, never returned: it would tell a client which
    ports are open.
    """
    parts = parse_url(url)
    request_headers = {**headers, "host": parts.netloc.rsplit("@", 1)[-1]}
    extensions = {"sni_hostname": parts.hostname or ""} if parts.scheme == "https" else {}
    for address in addresses:
        try:
            response = client.post(
                _through(parts, address),
                content=body,
                headers=request_headers,
                timeout=timeout,
                follow_redirects=False,
                extensions=extensions,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            log.info("webhook connection failed", address=str(address), error=repr(exc))
            continue  # nothing was sent: the next address may answer
        except httpx.HTTPError as exc:
            log.info("webhook request failed", address=str(address), error=repr(exc))
            break
        return classify(response)
    return AttemptResult("retry", None, no_response(timeout))
