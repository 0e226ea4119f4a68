"""Celery task messages, built without a broker connection.

The gateway writes a job record and its Celery message in one Redis script
(`shoal.store`), so the message has to exist as bytes before the script runs.
Celery builds the task headers and body (protocol 2) once per task, with
placeholders; this module fills in the ids and arguments of each message and
wraps it in the envelope kombu's Redis transport keeps in a queue's list, which
a real Celery worker then consumes like any message of its own. Building a
message is then a few string operations, not a walk through Celery.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from functools import lru_cache

from celery import Celery

from shoal import keys

# Only its message builder is used; it never connects to a broker.
_protocol = Celery("shoal-protocol", set_as_current=False)
_TASK_ID, _TAG, _ARGSREPR, _BODY = "@@task-id@@", "@@tag@@", "@@argsrepr@@", "@@body@@"
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


@lru_cache
def _template(task: str, queue: str) -> str:
    headers, properties, _, _ = _protocol.amqp.as_task_v2(
        _TASK_ID, task, args=(), ignore_result=True, argsrepr=_ARGSREPR
    )
    return json.dumps(
        {
            "body": _BODY,
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": {
                **properties,
                "delivery_mode": 2,  # persistent
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": _TAG,
                "delivery_info": {"exchange": queue, "routing_key": queue},
            },
        }
    )


@dataclass(frozen=True)
class Message:
    """A task message as it sits in a queue's list, and its delivery tag.

    While a worker holds the message (acks_late), kombu keeps it in the broker's
    unacked hash under this tag: how the store tells a message in flight from one
    that is gone.
    """

    body: str
    tag: str


def task_message(task: str, queue: str, args: tuple[str, ...]) -> Message:
    body = json.dumps([list(args), {}, _EMBED]).encode()
    tag = str(uuid.uuid4())
    message = (
        _template(task, queue)
        .replace(_TASK_ID, str(uuid.uuid4()))
        .replace(_TAG, tag)
        .replace(_ARGSREPR, json.dumps(repr(args))[1:-1])
        .replace(_BODY, base64.b64encode(body).decode())
    )
    return Message(message, tag)


def synthesize_message(job_id: str) -> Message:
    return task_message(keys.SYNTHESIZE_TASK, keys.TTS_QUEUE, (job_id,))


def webhook_message(job_id: str, event: str, webhook_id: str) -> str:
    return task_message(
        keys.DELIVER_WEBHOOK_TASK, keys.WEBHOOK_QUEUE, (job_id, event, webhook_id)
    ).body
