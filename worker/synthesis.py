"""One job, start to finish: claim, synthesize, encode, upload, record.

Every outcome is recorded through the job store: succeeded with the audio,
failed with a code and a reason, or back in the queue (after a delay) when the
failure was transient and attempts remain. A message is acknowledged only once
its job is recorded as finished or is safely runnable again:

- Redis away while claiming: `ClaimUnavailable`, and the task puts the message
  back instead of acknowledging it (the claim is atomic: the job is still
  queued, or its lease will lapse).
- Storage away while uploading: the upload is retried with backoff inside the
  attempt, the synthesized audio kept; only then is the job requeued, with a
  delay that doubles each attempt.
- Redis away while recording: the record is retried for as long as the lease
  could still be ours; past that the lease lapses and maintenance requeues.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from shoal.errors import Canceled, InvalidRequest, SynthesisError, Unavailable
from shoal.jobs import JobError, JobRecord, StoredAudio
from shoal.logs import bind_job, bind_request, get_logger
from shoal.settings import Settings
from shoal.storage import Storage, audio_key
from shoal.store import JobStore, Transition
from shoal.voice_store import VoiceStore
from shoal.voices import VoiceRecord
from worker import metrics
from worker.audio import encode, prepare
from worker.audio_publisher import publisher_for
from worker.engines import Engine, SynthesisRequest
from worker.heartbeat import Heartbeat, RunningJob

log = get_logger(__name__)
T = TypeVar("T")
MAX_REQUEUE_DELAY_SECONDS = 300.0


class ClaimUnavailable(Exception):
    """Redis failed while the job was being claimed: the message must go back."""


class Stages:
    """Milliseconds per stage of one job, for its log line and the stage histogram."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - started
            self.ms[name] = round(seconds * 1000, 2)
            metrics.STAGE_SECONDS.labels(name).observe(seconds)


class _StopWhen(stop_base):
    def __init__(self, condition: Callable[[], bool]) -> None:
        self.condition = condition

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.condition()


def persist(action: Callable[[], T], within: float, should_stop: Callable[[], bool]) -> T:
    """`action`, retried with jittered backoff while it raises Unavailable, for `within` s.

    Gives up early once `should_stop` (canceled, lost): the last error is raised.
    """

    def note(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("transient failure; retrying", error=str(error), attempt=state.attempt_number)

    retrying = Retrying(
        retry=retry_if_exception_type(Unavailable),
        stop=stop_after_delay(within) | _StopWhen(should_stop),
        wait=wait_exponential_jitter(initial=0.25, max=4.0),
        before_sleep=note,
        reraise=True,
    )
    return retrying(action)


@dataclass
class JobRunner:
    store: JobStore
    storage: Storage
    engine: Engine
    heartbeat: Heartbeat
    settings: Settings
    worker: str
    voices: VoiceStore

    def run(self, job_id: str) -> None:
        stages = Stages()
        with bind_job(job_id):
            try:
                with stages("claim"):
                    claimed, token, record = self.store.claim(job_id, self.worker)
            except Unavailable as exc:
                log.warning("cannot claim the job; its message goes back", error=exc.message)
                raise ClaimUnavailable(exc.message) from exc
            if not claimed.ok or record is None:
                # Canceled while queued, finished by an earlier delivery, or expired.
                log.info("job not claimable; message dropped", state=claimed.previous or "missing")
                return
            lease = self.heartbeat.job(job_id, token, record.started_at or time.time())
            with bind_request(record.request_id), lease as running:
                metrics.observe_started(record)
                self._run(record, running, stages)

    def _run(self, record: JobRecord, running: RunningJob, stages: Stages) -> None:
        log.info("job started", attempt=record.attempts)
        try:
            audio = self._synthesize(record, running, stages)
        except SynthesisError as exc:
            timed_out = SynthesisError(
                f"the job ran longer than {self.settings.job_timeout_seconds:g} s", code="timeout"
            )
            self._finish_failed(
                record, running, timed_out if running.stop_reason == "timeout" else exc
            )
            return
        except Unavailable as exc:
            self._retry_or_fail(record, running, exc)
            return
        except Exception as exc:
            log.exception("engine failed")
            self._finish_failed(
                record, running, SynthesisError(f"{type(exc).__name__}: {exc}", code="engine_error")
            )
            return
        # Before the result is recorded: a client that reads `succeeded` finds only
        # this run's audio (tests/worker/test_redelivery.py lists the bucket then).
        self._discard_earlier_runs(record)
        with stages("record"):
            done = self._record(
                running, lambda: self.store.succeed(record.id, running.token, audio, time.time())
            )
        if done is None or not done.ok:
            # Canceled, or the lease was lost and another run owns the job now (or will,
            # once maintenance sees the lease lapse): this run's audio must not be visible.
            self._discard(audio)
            state = done.previous if done else "unrecorded"
            log.info("job changed hands during the run; audio discarded", state=state)
            metrics.observe_discarded()
            return
        metrics.observe_succeeded(record, audio, stages.ms)
        log.info(
            "job succeeded",
            audio_seconds=round(audio.duration_seconds, 2),
            bytes=audio.bytes,
            stage_ms=stages.ms,
        )

    def _record(self, running: RunningJob, action: Callable[[], Transition]) -> Transition | None:
        """A transition that needs the lease, retried while Redis is away; None if it never got
        through: by then the lease has lapsed and maintenance requeues the job."""
        try:
            return persist(action, 2 * self.settings.lease_seconds, running.should_stop)
        except Unavailable as exc:
            log.warning("cannot record the job's outcome; its lease will lapse", error=exc.message)
            return None

    def _discard(self, audio: StoredAudio) -> None:
        self._delete([audio.key])

    def _discard_earlier_runs(self, record: JobRecord) -> None:
        """What earlier runs may have uploaded before they died unrecorded (a killed worker,
        a lost lease): only this run's audio is the job's, and only it may stay."""
        self._delete(
            [audio_key(record.id, n, record.input.format) for n in range(1, record.attempts)]
        )

    def _delete(self, keys: list[str]) -> None:
        if not keys:
            return
        try:
            self.storage.delete(keys)
        except Unavailable as exc:  # the lifecycle rule removes them at the latest
            log.warning("cannot delete discarded audio", keys=keys, error=exc.message)

    def _voice(
        self, name: str | None, language: str | None
    ) -> tuple[str | None, VoiceRecord | None]:
        """The catalog voice to use, or the cloned voice (checked again: it may be deleted)."""
        catalog = self.engine.catalog()
        if name is not None and not catalog.has_voice(name):
            cloned = self.voices.get(name)
            if cloned is not None:
                if not catalog.cloning:
                    raise SynthesisError(
                        f"the {catalog.engine} engine cannot speak cloned voices",
                        code="voice_not_supported",
                    )
                return None, cloned
        try:
            return catalog.resolve(name, language), None
        except InvalidRequest as exc:
            raise SynthesisError(exc.message, code=exc.code) from exc

    def _synthesize(self, record: JobRecord, running: RunningJob, stages: Stages) -> StoredAudio:
        job_input = record.input
        voice, cloned = self._voice(job_input.voice, job_input.language)
        engine_rate = self.engine.catalog().sample_rate
        publisher = publisher_for(self.store.redis, record, engine_rate, self.settings)
        request = SynthesisRequest(
            text=job_input.text,
            voice=voice,
            reference=cloned,
            language=job_input.language,
            params=job_input.engine_params,
            should_stop=running.should_stop,
            on_audio=publisher.on_audio if publisher else None,
        )
        with stages("synthesize"):
            speech = self.engine.synthesize(request)
        if running.should_stop():
            raise Canceled("the job stopped while it ran")
        if not speech.audible():
            raise SynthesisError("the text produced no audible speech", code="no_speech")
        if publisher:
            publisher.finish()
        with stages("encode"):
            speech = prepare(speech, job_input)  # speed and sample rate
            data = encode(speech, job_input.format)
        key = audio_key(record.id, record.attempts, job_input.format)
        with stages("upload"):
            persist(
                lambda: self.storage.put(key, data, job_input.format.content_type),
                self.settings.storage_retry_seconds,
                running.should_stop,
            )
        return StoredAudio(
            key=key,
            format=job_input.format,
            sample_rate=speech.sample_rate,
            duration_seconds=round(speech.duration_seconds, 3),
            bytes=len(data),
        )

    def _finish_failed(self, record: JobRecord, running: RunningJob, exc: SynthesisError) -> None:
        if running.stop_reason == "lost":
            return  # not ours any more: nothing to record
        error = JobError(code=exc.code, message=exc.message)
        done = self._record(running, lambda: self.store.fail(record.id, running.token, error))
        if done is not None and done.ok:
            metrics.observe_failed(error.code)
            log.warning("job failed", code=error.code, reason=error.message)

    def _retry_or_fail(self, record: JobRecord, running: RunningJob, exc: Unavailable) -> None:
        if running.stop_reason == "lost":
            return
        if record.attempts >= self.settings.max_attempts:
            self._finish_failed(record, running, SynthesisError(exc.message, code=exc.code))
            return
        delay = min(
            self.settings.requeue_delay_seconds * 2 ** (record.attempts - 1),
            MAX_REQUEUE_DELAY_SECONDS,
        )
        done = self._record(
            running, lambda: self.store.requeue(record.id, running.token, time.time() + delay)
        )
        if done is not None and done.ok:
            log.warning("transient failure; job requeued", error=exc.message, delay_s=delay)
            metrics.observe_requeued()
