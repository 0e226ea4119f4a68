"""`shoal up`: the whole stack on one machine, in the foreground.

Redis and SeaweedFS (unless SHOAL_REDIS_URL / SHOAL_S3_ENDPOINT point
elsewhere), the gateway, the synthesis workers and one webhook worker (with a
signing secret generated into the data folder unless SHOAL_WEBHOOK_SECRET is
set, and loopback receivers allowed unless SHOAL_WEBHOOK_ALLOW_HOSTS is). Children
that die are restarted; Ctrl-C or SIGTERM stops them all in reverse order,
workers first with a warm shutdown.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import httpx
import redis

from shoal import keys, registry
from shoal.local.autoscale.controller import Autoscaler
from shoal.local.autoscale.scaledobject import ScalingSpec
from shoal.local.pool import WorkerPool
from shoal.local.ports import free_port, port_is_free
from shoal.local.processes import FatalExit, Managed, ProcessSpec, Supervisor
from shoal.local.redis_server import RedisServer
from shoal.local.s3_server import SeaweedS3
from shoal.logs import get_logger
from shoal.settings import Settings
from shoal.webhooks import new_secret

log = get_logger(__name__)
POLL_SECONDS = 0.25
WORKER_STOP_SECONDS = 30.0
EXIT_CONFIG_ERROR = 2  # `python -m worker` cannot load its engine
# On one machine, webhook receivers are usually local: exempt loopback from the SSRF guard.
LOCAL_RECEIVERS = "127.0.0.0/8,::1,localhost"


def worker_spec(name: str, queues: str, env: dict[str, str]) -> ProcessSpec:
    return ProcessSpec(
        name=name,
        argv=[sys.executable, "-m", "worker", "--queues", queues, "--name", name],
        env=env,
        stop_timeout=WORKER_STOP_SECONDS,
        fatal_exit_codes=frozenset({EXIT_CONFIG_ERROR}),
    )


def gateway_spec(host: str, port: int, env: dict[str, str]) -> ProcessSpec:
    return ProcessSpec(
        name="gateway",
        argv=[
            sys.executable,
            "-m",
            "uvicorn",
            "api.main:create_app",
            "--factory",
            "--host",
            host,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )


class LocalStack:
    """The stack; with `scaling`, its synthesis workers follow that ScaledObject."""

    def __init__(self, settings: Settings, scaling: ScalingSpec | None = None) -> None:
        self.settings = settings
        self.scaling = scaling
        self.data_dir: Path = settings.data_dir
        self.supervisor = Supervisor(on_restart=self._restarted)
        self.env = dict(os.environ)
        self.s3: SeaweedS3 | None = None
        self.pool: WorkerPool | None = None
        self.autoscaler: Autoscaler | None = None
        self._stopping = False

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    def _restarted(self, child: Managed) -> None:
        log.warning("process restarted", process=child.spec.name, restarts=child.restarts)

    def start(self, ready_timeout: float = 600.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not port_is_free(self.settings.port):
            raise RuntimeError(f"port {self.settings.port} is in use: set SHOAL_PORT to another")
        if "redis_url" not in self.settings.model_fields_set:
            server = RedisServer(self.data_dir / "redis", free_port())
            self.supervisor.start(server.spec())
            server.wait_ready()
            self.env["SHOAL_REDIS_URL"] = server.url
        if "s3_endpoint" not in self.settings.model_fields_set:
            self.s3 = SeaweedS3(self.data_dir / "s3")
            self.supervisor.start(self.s3.spec())
            self.s3.wait_ready()
            self.env.update(self.s3.env())
        self._webhook_defaults()
        self.supervisor.start(gateway_spec(self.settings.host, self.settings.port, self.env))
        client = redis.Redis.from_url(self.redis_url, decode_responses=True)
        self.pool = WorkerPool(
            self.supervisor,
            lambda name: worker_spec(name, keys.TTS_QUEUE, self.env),
            client,
            # As a pod's grace period: the longest job, and a lease to record it.
            retire_timeout=self.settings.job_timeout_seconds + self.settings.lease_seconds,
            seen_seconds=registry.SEEN_HEARTBEATS * self.settings.lease_seconds / 3,
        )
        scaling = self.scaling
        self.pool.scale_to(scaling.min_replicas if scaling else self.settings.workers)
        webhook_worker = f"webhooks-1@{socket.gethostname()}"
        self.supervisor.start(worker_spec(webhook_worker, keys.WEBHOOK_QUEUE, self.env))
        self._wait_ready([*self.pool.names, webhook_worker], ready_timeout)
        if scaling is not None:
            self.autoscaler = Autoscaler(scaling, self.pool, client)
            log.info("autoscaling the synthesis workers", scaledobject=scaling.source)

    @property
    def redis_url(self) -> str:
        return self.env.get("SHOAL_REDIS_URL", self.settings.redis_url)

    def _webhook_defaults(self) -> None:
        """A signing secret kept in the data folder, and local receivers allowed."""
        if not self.settings.webhook_secret:
            path = self.data_dir / "webhook-secret"
            if not path.exists():
                path.write_text(new_secret())
                path.chmod(0o600)
            self.env["SHOAL_WEBHOOK_SECRET"] = path.read_text().strip()
            log.info("webhook signing secret", file=str(path))
        if "webhook_allow_hosts" not in self.settings.model_fields_set:
            self.env["SHOAL_WEBHOOK_ALLOW_HOSTS"] = LOCAL_RECEIVERS

    def _wait_ready(self, names: list[str], timeout: float) -> None:
        client = redis.Redis.from_url(self.redis_url)
        deadline = time.monotonic() + timeout
        try:
            while not (self._gateway_ready() and self._workers_ready(client, names)):
                if self._stopping:
                    raise KeyboardInterrupt
                self.supervisor.poll(starting=True)
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"shoal was not ready after {timeout:g} s; see the log above"
                    )
                time.sleep(POLL_SECONDS)
        finally:
            client.close()

    def _gateway_ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    @staticmethod
    def _workers_ready(client: redis.Redis, names: list[str]) -> bool:
        started = time.time() - 60
        return all((client.zscore(keys.WORKERS, n) or 0) > started for n in names)

    def supervise(self) -> None:
        """Restart what dies until a signal asks us to stop."""
        while not self._stopping:
            self.supervisor.poll()
            if self.autoscaler is not None:
                self.autoscaler.tick()
            time.sleep(POLL_SECONDS)

    def request_stop(self, signum: int, _frame: FrameType | None) -> None:
        if self._stopping:  # a second Ctrl-C: no more waiting
            self.supervisor.signal_all(signal.SIGKILL)
        self._stopping = True

    def stop(self) -> None:
        self.supervisor.stop_all()
        if self.s3 is not None:
            self.s3.cleanup()


def run(
    settings: Settings, announce: Callable[[str], None], scaling: ScalingSpec | None = None
) -> int:
    stack = LocalStack(settings, scaling)
    signal.signal(signal.SIGINT, stack.request_stop)
    signal.signal(signal.SIGTERM, stack.request_stop)
    try:
        stack.start()
        announce(stack.url)
        stack.supervise()
        return 0
    except FatalExit as exc:
        log.error("a process cannot start; stopping (its error is above)", reason=str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        stack.stop()
