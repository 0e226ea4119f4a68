"""One webhook attempt, start to finish, on the CPU webhook workers.

Check the URL again after resolving it (the SSRF guard), sign the event with
every current secret, POST it to a checked address, then record the outcome
and schedule the retry (with jitter, honouring Retry-After) or give up.

A retry can only be sent while the job exists (its body is the job, with a
fresh audio URL): the schedule is cut at the job's expiry
(SHOAL_RETENTION_SECONDS). A retry that would come later is not scheduled; the
delivery ends `failed` at once, saying why, with a warning in the log and the
`expired` outcome in `shoal_webhook_deliveries_total`.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from shoal import ssrf
from shoal.deliveries import DeliveryLog
from shoal.jobs import JobRecord
from shoal.logs import REQUEST_ID_HEADER, bind_job, bind_request, get_logger
from shoal.settings import Settings
from shoal.storage import Storage
from shoal.store import JobStore
from shoal.views import present_job
from shoal.webhooks import AttemptResult, DeliveryState, post, signed_headers
from worker import metrics

log = get_logger(__name__)
JITTER = 0.2  # +-20 % on each scheduled delay, so retries of many jobs spread out
MAX_RETRY_AFTER_SECONDS = 86_400.0


def event_body(event: str, record: JobRecord, storage: Storage, settings: Settings) -> bytes:
    """`{"type", "timestamp", "data": <the job as GET returns it>}` with a fresh audio URL."""
    job = present_job(record, storage, settings)
    payload = {
        "type": event,
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "data": job.model_dump(mode="json"),
    }
    return json.dumps(payload, separators=(",", ":")).encode()


@dataclass
class WebhookSender:
    store: JobStore
    deliveries: DeliveryLog
    storage: Storage
    settings: Settings
    http: httpx.Client

    def __post_init__(self) -> None:
        self.allow = ssrf.Allowlist.parse(
            self.settings.webhook_allow_hosts, self.settings.webhook_ports
        )
        span = sum(self.settings.webhook_retry_schedule) * (1 + JITTER)
        if span > self.settings.retention_seconds:
            log.info(
                "webhook retries are cut at the job's expiry",
                schedule_seconds=round(span),
                retention_seconds=self.settings.retention_seconds,
            )

    def run(self, job_id: str, event: str, webhook_id: str) -> None:
        with bind_job(job_id):
            record = self.store.get(job_id)
            if record is None or record.webhook is None:
                # Only a redelivery asked at the last moment, or a worker down for longer
                # than the margin, gets here: scheduled retries stop before expiry.
                log.warning("webhook not sent: the job expired", webhook_event=event)
                metrics.WEBHOOKS.labels("expired").inc()
                return
            with bind_request(record.request_id):
                self._deliver(record, record.webhook.url, event, webhook_id)

    def _deliver(self, record: JobRecord, url: str, event: str, webhook_id: str) -> None:
        if self.deliveries.is_disabled(url):
            error = "not sent: this URL answered 410 Gone earlier (redeliver re-enables it)"
            self.deliveries.record(
                record.id, event, DeliveryState.DISABLED, None, error, None, False
            )
            metrics.WEBHOOKS.labels(DeliveryState.DISABLED.value).inc()
            return
        self.deliveries.started(record.id, event)
        started = time.perf_counter()
        result = self._attempt(record, event, webhook_id, url)
        metrics.WEBHOOK_SECONDS.observe(time.perf_counter() - started)
        self._settle(record, event, webhook_id, result)

    def _attempt(self, record: JobRecord, event: str, webhook_id: str, url: str) -> AttemptResult:
        try:
            _, addresses = ssrf.resolve(url, self.allow)
        except ssrf.BlockedAddress as exc:
            return AttemptResult("give_up", None, exc.message)
        except OSError as exc:  # DNS down or the name gone: may come back
            log.info("webhook host did not resolve", error=str(exc))
            return AttemptResult("retry", None, "the receiver's host name did not resolve")
        body = event_body(event, record, self.storage, self.settings)
        headers = signed_headers(webhook_id, body, self.settings.webhook_secret)
        if record.request_id:  # the receiver can log it too: one id for the job's whole life
            headers[REQUEST_ID_HEADER] = record.request_id
        timeout = self.settings.webhook_timeout_seconds
        return post(self.http, url, addresses, body, headers, timeout)

    def _next_delay(self, attempts: int, retry_after: float | None) -> float | None:
        """Seconds until the next attempt, or None when the schedule is used up."""
        schedule = self.settings.webhook_retry_schedule
        if attempts > len(schedule):
            return None
        delay = schedule[attempts - 1] * random.uniform(1 - JITTER, 1 + JITTER)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
        return delay

    def _margin(self) -> float:
        """How long before the job's expiry a retry must be due to still find the job:
        the promotion's lag (maintenance interval) plus one attempt's timeout, twice."""
        settings = self.settings
        return 2 * (settings.maintenance_interval_seconds + settings.webhook_timeout_seconds)

    def _settle(
        self, record: JobRecord, event: str, webhook_id: str, result: AttemptResult
    ) -> None:
        job_id = record.id
        retry = None
        error = result.error
        outcome: str | None = None
        if result.verdict == "delivered":
            state = DeliveryState.DELIVERED
        elif result.verdict == "gone":
            state = DeliveryState.DISABLED
            if record.webhook is not None:
                self.deliveries.disable(record.webhook.url)
        elif result.verdict == "give_up":
            state = DeliveryState.FAILED
        else:
            attempts = self.deliveries.attempts(job_id, event) + 1
            delay = self._next_delay(attempts, result.retry_after)
            left = self.deliveries.job_expires_in(job_id)
            if delay is None:
                state = DeliveryState.FAILED
                error = f"gave up after {attempts} attempts; last: {result.error}"
            elif left is None or delay > left - self._margin():
                state, outcome = DeliveryState.FAILED, "expired"
                error = (
                    f"gave up after {attempts} attempts: the next retry (in {delay:.0f} s) "
                    f"would come after the job expires (in {max(left or 0, 0):.0f} s, "
                    "SHOAL_RETENTION_SECONDS); last: "
                    f"{result.error}"
                )
                log.warning("webhook retries cut by retention", webhook_event=event)
            else:
                state = DeliveryState.PENDING
                retry = (time.time() + delay, webhook_id)
        self.deliveries.record(job_id, event, state, result.status_code, error, retry)
        metrics.WEBHOOKS.labels(outcome or (state.value if retry is None else "retrying")).inc()
        log.info(
            "webhook attempt",
            webhook_event=event,
            webhook_id=webhook_id,
            state=state.value,
            status_code=result.status_code,
            error=error,
            retry_in=round(retry[0] - time.time(), 1) if retry else None,
        )
