"""One job, start to finish: claim, synthesize, encode, upload, record.

Every outcome is recorded through the job store: succeeded with the audio,
failed with a code and a reason, or back in the queue when the failure was
transient (storage or Redis away) and attempts remain.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from shoal.errors import Canceled, InvalidRequest, SynthesisError, Unavailable
from shoal.jobs import JobError, JobRecord, StoredAudio
from shoal.logs import bind_job, bind_request, get_logger
from shoal.settings import Settings
from shoal.storage import Storage, audio_key
from shoal.store import JobStore
from shoal.voice_store import VoiceStore
from shoal.voices import VoiceRecord
from worker import metrics
from worker.audio import encode
from worker.engines import Engine, SynthesisRequest
from worker.heartbeat import Heartbeat, RunningJob

log = get_logger(__name__)


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
            with stages("claim"):
                claimed, token, record = self.store.claim(job_id, self.worker)
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
        with stages("record"):
            done = self.store.succeed(record.id, running.token, audio, time.time())
        if not done.ok:
            # Canceled, or the lease was lost and another run owns the job now.
            self.storage.delete([audio.key])
            log.info("job changed hands during the run; audio discarded", state=done.previous)
            metrics.observe_discarded()
            return
        metrics.observe_succeeded(record, audio, stages.ms)
        log.info(
            "job succeeded",
            audio_seconds=round(audio.duration_seconds, 2),
            bytes=audio.bytes,
            stage_ms=stages.ms,
        )

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
        request = SynthesisRequest(
            text=job_input.text,
            voice=voice,
            reference=cloned,
            language=job_input.language,
            params=job_input.engine_params,
            should_stop=running.should_stop,
        )
        with stages("synthesize"):
            speech = self.engine.synthesize(request)
        if running.should_stop():
            raise Canceled("the job stopped while it ran")
        if not speech.audible():
            raise SynthesisError("the text produced no audible speech", code="no_speech")
        with stages("encode"):
            data = encode(speech, job_input.format)
        key = audio_key(record.id, record.attempts, job_input.format)
        with stages("upload"):
            self.storage.put(key, data, job_input.format.content_type)
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
        self.store.fail(record.id, running.token, error)
        metrics.observe_failed(error.code)
        log.warning("job failed", code=error.code, reason=error.message)

    def _retry_or_fail(self, record: JobRecord, running: RunningJob, exc: Unavailable) -> None:
        if record.attempts < self.settings.max_attempts:
            log.warning("transient failure; job requeued", error=exc.message)
            self.store.requeue(record.id, running.token)
            metrics.observe_requeued()
        else:
            self._finish_failed(record, running, SynthesisError(exc.message, code=exc.code))
