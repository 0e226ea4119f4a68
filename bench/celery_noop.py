"""Bare Celery, the pipeline benchmark's ceiling: a no-op task, shoal's broker settings.

celery -A bench.celery_noop worker --pool solo -Q bench
"""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

QUEUE = "bench"
app = Celery("bench", broker=os.environ.get("SHOAL_REDIS_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    task_default_queue=QUEUE,
    task_queues=[Queue(QUEUE)],
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
    worker_enable_remote_control=False,
)


@app.task(name="bench.noop")
def noop(job_id: str) -> None:
    """Nothing: what Celery itself costs per message."""


_storage = None


@app.task(name="bench.encode_upload")
def encode_upload(job_id: str) -> None:
    """The tone clip to WAV, then into S3: a shoal job minus shoal."""
    global _storage
    from shoal.jobs import AudioFormat
    from shoal.settings import get_settings
    from shoal.storage import Storage, audio_key
    from worker.audio import encode
    from worker.engines.base import SynthesisRequest
    from worker.engines.tone import ToneEngine

    if _storage is None:
        _storage = Storage(get_settings())
    speech = ToneEngine().synthesize(SynthesisRequest(""))
    data = encode(speech, AudioFormat.WAV)
    _storage.put(audio_key(job_id, 1, AudioFormat.WAV), data, AudioFormat.WAV.content_type)
