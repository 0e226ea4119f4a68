"""Celery task messages, built without a broker connection.

The gateway writes a job record and its Celery message in one Redis script
(`shoal.store`), so the message has to exist as bytes before the script runs.
Celery builds the task headers and body (protocol 2); this module only wraps
them in the envelope kombu's Redis transport keeps in a queue's list, which a
real Celery worker then consumes like any message of its own.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from celery import Celery
from kombu.serialization import dumps

from shoal import keys

# Only its message builder is used; it never connects to a broker.
_protocol = Celery("shoal-protocol", set_as_current=False)


def task_message(task: str, queue: str, args: tuple[Any, ...]) -> str:
    task_id = str(uuid.uuid4())
    headers, properties, body, _ = _protocol.amqp.as_task_v2(
        task_id, task, args=args, ignore_result=True
    )
    content_type, encoding, data = dumps(body, serializer="json")
    raw = data if isinstance(data, bytes) else data.encode(encoding)
    return json.dumps(
        {
            "body": base64.b64encode(raw).decode(),
            "content-encoding": encoding,
            "content-type": content_type,
            "headers": headers,
            "properties": {
                **properties,
                "delivery_mode": 2,
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
                "delivery_info": {"exchange": queue, "routing_key": queue},
            },
        }
    )


def synthesize_message(job_id: str) -> str:
    return task_message(keys.SYNTHESIZE_TASK, keys.TTS_QUEUE, (job_id,))


def webhook_message(job_id: str, event: str, webhook_id: str) -> str:
    return task_message(keys.DELIVER_WEBHOOK_TASK, keys.WEBHOOK_QUEUE, (job_id, event, webhook_id))
