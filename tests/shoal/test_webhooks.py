"""Standard Webhooks signing and verification, checked against an independent library."""

from __future__ import annotations

import ipaddress
import json
import time

import httpx
import pytest
import standardwebhooks
from pydantic import ValidationError

from shoal.webhooks import (
    InvalidSignature,
    WebhookSpec,
    classify,
    new_secret,
    new_webhook_id,
    no_response,
    post,
    secret_key,
    signed_headers,
    verify,
)
from tests.receiver import receiver

BODY = json.dumps({"type": "job.succeeded", "data": {"id": "job_x"}}).encode()


def test_an_independent_implementation_accepts_our_signature() -> None:
    secret = new_secret()
    headers = signed_headers(new_webhook_id(), BODY, [secret])
    payload = standardwebhooks.Webhook(secret).verify(BODY, headers)
    assert payload["type"] == "job.succeeded"


def test_our_verify_accepts_an_independent_signature() -> None:
    secret = new_secret()
    webhook_id = new_webhook_id()
    now = int(time.time())
    signature = standardwebhooks.Webhook(secret).sign(webhook_id, _at(now), BODY.decode())
    headers = {
        "Webhook-Id": webhook_id,
        "Webhook-Timestamp": str(now),
        "Webhook-Signature": signature,
    }
    verify(headers, BODY, [secret])


def _at(epoch: int):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC)


def test_rotation_signs_with_every_secret() -> None:
    old, new = new_secret(), new_secret()
    headers = signed_headers(new_webhook_id(), BODY, [new, old])
    assert len(headers["webhook-signature"].split()) == 2
    verify(headers, BODY, [old])  # a receiver not yet rotated
    verify(headers, BODY, [new])  # a receiver already rotated
    standardwebhooks.Webhook(old).verify(BODY, headers)
    with pytest.raises(InvalidSignature):
        verify(headers, BODY, [new_secret()])


@pytest.mark.parametrize("part", ["body", "id", "timestamp", "signature"])
def test_any_tampering_is_rejected(part: str) -> None:
    secret = new_secret()
    headers = signed_headers("msg_1", BODY, [secret])
    body = BODY
    if part == "body":
        body = BODY.replace(b"job_x", b"job_y")
    elif part == "id":
        headers["webhook-id"] = "msg_2"
    elif part == "timestamp":
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) + 1)
    else:
        # A character in the middle: the last ones before "=" also carry padding bits.
        sig = headers["webhook-signature"]
        headers["webhook-signature"] = sig[:12] + ("A" if sig[12] != "A" else "B") + sig[13:]
    with pytest.raises(InvalidSignature):
        verify(headers, body, [secret])
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(body, headers)


def test_old_and_future_timestamps_are_rejected() -> None:
    secret = new_secret()
    headers = signed_headers("msg_1", BODY, [secret])
    sent = int(headers["webhook-timestamp"])
    verify(headers, BODY, [secret], now=sent + 299)
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify(headers, BODY, [secret], now=sent + 301)
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify(headers, BODY, [secret], now=sent - 301)


def test_missing_headers_are_rejected() -> None:
    with pytest.raises(InvalidSignature, match="missing"):
        verify({"webhook-id": "x"}, BODY, [new_secret()])


@pytest.mark.parametrize("secret", ["plain", "whsec_not base64!", "whsec_" + "QUJD"])
def test_malformed_secrets_are_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        secret_key(secret)


def test_webhook_spec_defaults_to_terminal_events() -> None:
    spec = WebhookSpec(url="https://example.com/hook")
    assert spec.events == ["job.succeeded", "job.failed", "job.canceled"]
    with pytest.raises(ValidationError):
        WebhookSpec(url="https://example.com/hook", events=["job.exploded"])
    with pytest.raises(ValidationError):
        WebhookSpec(url="https://example.com/hook", events=[])


@pytest.mark.parametrize(
    ("status", "headers", "verdict", "retry_after"),
    [
        (200, {}, "delivered", None),
        (204, {}, "delivered", None),
        (410, {}, "gone", None),
        (302, {"location": "https://elsewhere"}, "give_up", None),
        (400, {}, "give_up", None),
        (404, {}, "give_up", None),
        (429, {"retry-after": "7"}, "retry", 7.0),
        (503, {}, "retry", None),
        (500, {}, "retry", None),
        (408, {}, "retry", None),
    ],
)
def test_classify(
    status: int, headers: dict[str, str], verdict: str, retry_after: float | None
) -> None:
    result = classify(httpx.Response(status, headers=headers))
    assert result.verdict == verdict
    assert result.status_code == status
    assert result.retry_after == retry_after


def test_retry_after_as_an_http_date() -> None:
    from email.utils import formatdate

    response = httpx.Response(
        503, headers={"retry-after": formatdate(time.time() + 120, usegmt=True)}
    )
    retry_after = classify(response).retry_after
    assert retry_after is not None and 110 < retry_after <= 121


def test_every_checked_address_is_tried_until_one_answers() -> None:
    # 127.0.0.2 has nothing listening on the receiver's port (connection refused);
    # the name's second address is the receiver.
    dead, live = ipaddress.ip_address("127.0.0.2"), ipaddress.ip_address("127.0.0.1")
    with receiver() as hooks, httpx.Client() as http:
        url = hooks.url.replace("127.0.0.1", "localhost") + "/ok"
        headers = signed_headers(new_webhook_id(), BODY, [new_secret()])
        result = post(http, url, [dead, live], BODY, headers, timeout=5)
        assert result.verdict == "delivered"
        [hit] = hooks.to("/ok")
        assert hit.headers["host"] == url.split("/")[2]  # the name, not the address


def test_a_failed_connection_says_nothing_about_the_port() -> None:
    # Refused, reset or timed out: the client reads one sentence, never the socket's error.
    with receiver() as hooks, httpx.Client() as http:
        headers = signed_headers(new_webhook_id(), BODY, [new_secret()])
        refused = post(
            http, hooks.url + "/ok", [ipaddress.ip_address("127.0.0.2")], BODY, headers, 1
        )
        slow = post(
            http, hooks.url + "/slow", [ipaddress.ip_address("127.0.0.1")], BODY, headers, 1
        )
    assert refused.verdict == slow.verdict == "retry"
    assert refused.error == slow.error == no_response(1)
