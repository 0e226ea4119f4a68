"""The Celery app: the broker settings every shoal worker runs with.

Redis is the broker; a queue is a Redis list of the same name (what KEDA's
Redis scaler reads). Messages are acknowledged after the job is recorded, one
at a time per process, so a worker never holds work it is not doing.
"""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from shoal import keys
from shoal.settings import Settings, get_settings
from worker import broker


def create_celery(settings: Settings) -> Celery:
    broker.install()  # a failed ack must not take a prefetch slot for good
    app = Celery("shoal", broker=settings.redis_url, set_as_current=True)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=keys.TTS_QUEUE,
        task_queues=[Queue(q, Exchange(q), routing_key=q) for q in keys.QUEUES],
        broker_transport_options={"visibility_timeout": settings.visibility_timeout},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        worker_enable_remote_control=False,
        enable_utc=True,
    )
    return app


app = create_celery(get_settings())
