"""Locust users of shoal: submit, wait (poll with backoff, or a webhook), download, decode.

    locust -f loadtest/locustfile.py --host http://127.0.0.1:8000 --shape spike \\
        --shape-peak 12 --shape-seconds 120 --headless --csv out/locust --csv-full-history

Each user keeps one job in flight: it submits a text (mostly short prompts,
some paragraphs, an occasional article, in the languages the engine offers),
waits for the job to end, downloads the audio and checks that it decodes to
sound of the announced length and rate. Besides the HTTP requests (`submit`,
`poll`, `audio`), each job adds entries of type JOB from its record's
timestamps: `queue wait` (accepted to started), `synthesis` (started to
finished) and `time to audio` (accepted to finished). A job that fails, is
lost or misses `--job-deadline` is a failure of `time to audio`, with its reason.
"""

from __future__ import annotations

import io
import random
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import gevent
import numpy as np
import soundfile as sf
from locust import HttpUser, LoadTestShape, between, events, task
from locust.env import Environment

from loadtest import shapes, texts
from loadtest.receiver import Receiver

FORMATS = ("wav", "mp3", "ogg", "flac")
TERMINAL = {"succeeded", "failed", "canceled"}
_receiver: Receiver | None = None


class JobFailed(Exception):
    """A job that did not give audio: failed, canceled, lost or late."""


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    group = parser.add_argument_group("shoal")
    group.add_argument("--api-key", default="", help="Bearer key, when the gateway has keys")
    group.add_argument("--shape", choices=sorted(shapes.SHAPES), default="steady")
    group.add_argument("--shape-base", type=int, default=1, help="users off the peak")
    group.add_argument("--shape-peak", type=int, default=10, help="users at the peak")
    group.add_argument("--shape-seconds", type=float, default=120, help="length of the test")
    group.add_argument("--completion", choices=["poll", "webhook"], default="poll")
    group.add_argument("--webhook-host", default="127.0.0.1", help="where shoal reaches us")
    group.add_argument("--webhook-port", type=int, default=0, help="0: any free port")
    group.add_argument("--webhook-secret", default="", help="whsec_... to verify deliveries")
    group.add_argument("--job-deadline", type=float, default=300, help="seconds per job")
    group.add_argument("--formats", default="wav,mp3,ogg", help=f"among {','.join(FORMATS)}")
    group.add_argument("--jobs-log", default="", help="file to append accepted job ids to")


@events.init.add_listener
def _start_receiver(environment: Environment, **_: Any) -> None:
    global _receiver
    options = environment.parsed_options
    if options is None or options.completion != "webhook":
        return
    if not options.webhook_secret:
        raise SystemExit("--completion webhook needs --webhook-secret (whsec_...) to verify")
    _receiver = Receiver(options.webhook_host, options.webhook_port, [options.webhook_secret])
    _receiver.start()


@events.quitting.add_listener
def _stop_receiver(**_: Any) -> None:
    if _receiver is not None:
        _receiver.stop()


class ChosenShape(LoadTestShape):
    """The shape `--shape` names, between --shape-base and --shape-peak users."""

    def __init__(self) -> None:
        super().__init__()
        self.shape: shapes.Shape | None = None

    def tick(self) -> tuple[int, float] | None:
        if self.shape is None:
            assert self.runner is not None
            o: Any = self.runner.environment.parsed_options
            self.shape = shapes.SHAPES[o.shape](o.shape_base, o.shape_peak, o.shape_seconds)
        return self.shape.tick()

    def reset_time(self) -> None:
        super().reset_time()
        if self.shape is not None:
            self.shape.reset_time()


def _seconds(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


class ShoalUser(HttpUser):
    wait_time = between(0.2, 1.0)  # a moment between one job's audio and the next job

    def on_start(self) -> None:
        o = self.environment.parsed_options
        self.options = o
        self.rng = random.Random()
        self.formats = [f for f in o.formats.split(",") if f in FORMATS] or ["wav"]
        self.headers = {"authorization": f"Bearer {o.api_key}"} if o.api_key else {}
        voices = self.client.get("/v1/voices", headers=self.headers, name="voices").json()
        languages = voices.get("languages")
        offered = {tag.split("-")[0] for tag in languages} if languages else None
        self.pool = texts.samples(offered) or texts.samples(None)
        self.log = Path(o.jobs_log).open("a") if o.jobs_log else None  # noqa: SIM115  closed on_stop

    def on_stop(self) -> None:
        if self.log is not None:
            self.log.close()

    @task
    def synthesize(self) -> None:
        sample = texts.pick(self.rng, self.pool)
        body: dict[str, Any] = {
            "text": sample.text,
            "language": sample.language,
            "format": self.rng.choice(self.formats),
            "metadata": {"kind": sample.kind, "loadtest": True},
        }
        if _receiver is not None:
            url = f"http://{self.options.webhook_host}:{_receiver.port}/hooks"
            body["webhook"] = {"url": url}
        with self.client.post(
            "/v1/jobs", json=body, headers=self.headers, name="submit", catch_response=True
        ) as response:
            if response.status_code not in (200, 202):
                response.failure(f"{response.status_code}: {response.text[:200]}")
                return
            job = response.json()
        if self.log is not None:
            self.log.write(job["id"] + "\n")
            self.log.flush()
        started = time.monotonic()
        try:
            done = self._wait(job["id"])
            timings = self._timings(done)
            self._download(done)
        except JobFailed as exc:
            self._fire("time to audio", (time.monotonic() - started) * 1000, exc)
            return
        # Fired after the download, with no yield between: a user stopped mid-download
        # at the end of a run counts neither, so every counted job has its audio counted.
        for name, ms in timings.items():
            self._fire(name, ms)

    def _wait(self, job_id: str) -> dict[str, Any]:
        deadline = self.options.job_deadline
        if _receiver is not None:
            job = _receiver.wait(job_id, deadline)
            if job is None:
                raise JobFailed(f"no webhook within {deadline:g} s")
            return job
        give_up, pause, job = time.monotonic() + deadline, 0.25, None
        while time.monotonic() < give_up:
            with self.client.get(
                f"/v1/jobs/{job_id}", headers=self.headers, name="poll", catch_response=True
            ) as response:
                if response.status_code == 404:
                    raise JobFailed("lost: the accepted job is gone")
                if response.status_code != 200:
                    response.failure(f"{response.status_code}")
                else:
                    job = response.json()
                    if job is not None and job["status"] in TERMINAL:
                        return dict(job)
            gevent.sleep(pause)
            pause = min(2.0, pause * 1.5)
        status = job["status"] if job else "unknown"
        raise JobFailed(f"deadline: still {status} after {deadline:g} s")

    @staticmethod
    def _timings(job: dict[str, Any]) -> dict[str, float]:
        """The JOB entries (ms) of a job that succeeded, from its record's timestamps."""
        if job["status"] != "succeeded":
            error = job.get("error") or {}
            raise JobFailed(f"{job['status']}: {error.get('code')}: {error.get('message')}")
        created, begun, finished = (
            _seconds(job.get(k)) for k in ("created_at", "started_at", "finished_at")
        )
        if created is None or begun is None or finished is None:
            raise JobFailed("succeeded without its timestamps")
        return {
            "queue wait": (begun - created) * 1000,
            "synthesis": (finished - begun) * 1000,
            "time to audio": (finished - created) * 1000,
        }

    def _download(self, job: dict[str, Any]) -> None:
        audio = job["audio"]
        with self.client.get(audio["url"], name="audio", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")
                return
            problem = _audio_problem(response.content, audio)
            if problem:
                response.failure(problem)

    def _fire(self, name: str, ms: float, exception: Exception | None = None) -> None:
        self.environment.events.request.fire(
            request_type="JOB",
            name=name,
            response_time=max(0.0, ms),
            response_length=0,
            exception=exception,
            context={},
        )


def _audio_problem(data: bytes, announced: dict[str, Any]) -> str | None:
    """Why the audio is not what the job announced, or None when it is."""
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError) as exc:
        return f"cannot decode the {announced['format']}: {exc}"
    seconds = len(samples) / rate
    if rate != announced["sample_rate"]:
        return f"sample rate {rate}, announced {announced['sample_rate']}"
    if abs(seconds - announced["duration_seconds"]) > max(0.1, 0.1 * seconds):
        return f"{seconds:.2f} s of audio, announced {announced['duration_seconds']}"
    if not len(samples) or float(np.sqrt(np.mean(np.square(samples)))) < 1e-3:
        return "the audio is silent"
    return None
