"""The job as clients see it: the one presenter for GET responses and webhook bodies."""

from __future__ import annotations

import time

from shoal.jobs import Audio, Job, JobRecord, JobStatus
from shoal.settings import Settings
from shoal.storage import Storage
from shoal.webhooks import WebhookStatus


def present_job(
    record: JobRecord,
    storage: Storage,
    settings: Settings,
    webhook: WebhookStatus | None = None,
) -> Job:
    """The public job, with a fresh presigned URL once it has audio.

    The URL lives `audio_url_ttl_seconds`, but never past the audio's own expiry.
    Presigning is a local computation: no request is made.
    """
    audio = None
    if record.status is JobStatus.SUCCEEDED and record.audio is not None:
        expires = (record.finished_at or time.time()) + settings.retention_seconds
        ttl = int(min(settings.audio_url_ttl_seconds, max(60, expires - time.time())))
        url, expires_at = storage.presign(record.audio.key, ttl)
        audio = Audio(url=url, expires_at=expires_at, **record.audio.model_dump(exclude={"key"}))
    if webhook is None and record.webhook is not None:
        webhook = WebhookStatus(url=record.webhook.url, events=record.webhook.events)
    return record.public(audio, webhook)
