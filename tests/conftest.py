"""Real services for the whole test run: a redis-server and a SeaweedFS S3 server.

Both listen on free loopback ports of their own, so test runs never touch the
machine's services or each other. Every test that needs Redis gets its own
database number, flushed first.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from shoal.local.ports import free_port
from shoal.local.processes import spawn, stop
from shoal.local.redis_server import RedisServer
from shoal.local.s3_server import SeaweedS3
from shoal.settings import Settings, get_settings
from tests.observed import Observed, observed_stack
from tests.support import Env, gateway, running, start_worker_spec, wait_for_worker

# Fast lifecycle so lost jobs and expiry show up within a test's patience.
FAST = {
    "SHOAL_LEASE_SECONDS": "1.5",
    "SHOAL_MAINTENANCE_INTERVAL_SECONDS": "0.3",
    "SHOAL_LOG_LEVEL": "INFO",
}
_databases = itertools.count()  # database 0 belongs to the shared gateway and worker


@contextmanager
def private_redis(folder: Path) -> Iterator[RedisServer]:
    """A redis-server of its own on a free loopback port, stopped afterwards."""
    server = RedisServer(folder, free_port(), durable=False)
    process = spawn(server.spec())
    try:
        server.wait_ready()
        yield server
    finally:
        stop(process, timeout=10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with private_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    server = SeaweedS3(tmp_path_factory.mktemp("s3"))
    process = spawn(server.spec())
    try:
        server.wait_ready()
        yield server
    finally:
        stop(process, timeout=10)
        server.cleanup()


def _env(redis_server: RedisServer, s3_server: SeaweedS3, db: int, bucket: str) -> Env:
    return Env(
        {
            **FAST,
            **s3_server.env(),
            "SHOAL_REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/{db}",
            "SHOAL_S3_BUCKET": bucket,
        }
    )


@pytest.fixture(scope="session")
def shared_env(
    redis_server: RedisServer, s3_server: SeaweedS3, tmp_path_factory: pytest.TempPathFactory
) -> Env:
    """Database 0: the shared gateway and worker of the end-to-end tests."""
    alive = tmp_path_factory.mktemp("alive") / "worker"
    return _env(redis_server, s3_server, 0, "shoal-shared").with_(
        SHOAL_WORKER_ALIVE_FILE=str(alive)
    )


def fresh_env(redis_server: RedisServer, s3_server: SeaweedS3) -> Env:
    """A Redis database (flushed) of its own; one bucket for all such tests."""
    db = 1 + next(_databases) % 15
    redis.Redis(port=redis_server.port, db=db).flushdb()
    return _env(redis_server, s3_server, db, "shoal-tests")


@pytest.fixture
def env(redis_server: RedisServer, s3_server: SeaweedS3) -> Env:
    return fresh_env(redis_server, s3_server)


@pytest.fixture
def settings(env: Env, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    for name, value in env.values.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
def env_settings(env: Env, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Settings]]:
    """Settings of the test's env with some variables overridden."""

    def make(**overrides: str) -> Settings:
        for name, value in {**env.values, **overrides}.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        return get_settings()

    yield make
    get_settings.cache_clear()


@pytest.fixture
def sync_redis(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@dataclass
class Live:
    """A real gateway (uvicorn) and a real Celery worker process on database 0."""

    url: str
    env: Env
    redis: redis.Redis
    worker: str


@pytest.fixture(scope="session")
def live(shared_env: Env) -> Iterator[Live]:
    client = redis.Redis.from_url(shared_env.values["SHOAL_REDIS_URL"], decode_responses=True)
    client.flushdb()
    name = "tts-shared@tests"
    with gateway(shared_env) as url, running(start_worker_spec(shared_env, name)):
        wait_for_worker(client, name)
        yield Live(url, shared_env, client, name)
    client.close()


@pytest.fixture
def client(live: Live) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        yield http


# Fish Speech: a tiny random checkpoint in the real format, built once per run,
# and a Redis server of its own so fish workers never take the espeak tests' jobs.


@dataclass(frozen=True)
class FishCheckpoint:
    directory: Path
    codec_config: Path


@pytest.fixture(scope="session")
def fish_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> FishCheckpoint:
    from bench.fish_checkpoint import build

    directory = tmp_path_factory.mktemp("fish-checkpoint")
    return FishCheckpoint(directory, build(directory, "tiny"))


@pytest.fixture(scope="session")
def fish_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with private_redis(tmp_path_factory.mktemp("fish-redis")) as server:
        yield server


@dataclass
class FishStack:
    """Where fish-speech tests run: the env for their processes, and its Redis database."""

    env: Env
    redis: redis.Redis


@pytest.fixture(scope="session")
def fish_stacks(
    fish_redis: RedisServer, s3_server: SeaweedS3, fish_checkpoint: FishCheckpoint
) -> Callable[[int], FishStack]:
    def make(db: int) -> FishStack:
        env = _env(fish_redis, s3_server, db, f"shoal-fish-{db}").with_(
            SHOAL_ENGINE="fish-speech",
            SHOAL_FISH_CHECKPOINT=str(fish_checkpoint.directory),
            SHOAL_FISH_CODEC_CONFIG=str(fish_checkpoint.codec_config),
            SHOAL_FISH_DEVICE="cpu",
            SHOAL_FISH_COMPILE="false",
        )
        client = redis.Redis(port=fish_redis.port, db=db, decode_responses=True)
        client.flushdb()
        return FishStack(env, client)

    return make


@pytest.fixture(scope="session")
def fish_live(fish_stacks: Callable[[int], FishStack]) -> Iterator[Live]:
    """A gateway and one fish-speech worker (tiny checkpoint, CPU) on the fish Redis, db 0."""
    stack = fish_stacks(0)
    name = "tts-fish@tests"
    with gateway(stack.env) as url, running(start_worker_spec(stack.env, name)):
        wait_for_worker(stack.redis, name, timeout=120)
        yield Live(url, stack.env, stack.redis, name)
    stack.redis.close()


@pytest.fixture
def fish_client(fish_live: Live) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fish_live.url, timeout=30) as http:
        yield http


@pytest.fixture(scope="session")
def observed(s3_server: SeaweedS3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    """A gateway, a worker and a webhook worker with JSON logs and metrics, after a known
    workload (tests/observed.py). It lives for the whole run, so it has a Redis of its
    own: its worker must never take other tests' jobs, nor its counts see them."""
    with private_redis(tmp_path_factory.mktemp("observed-redis")) as server:
        env = _env(server, s3_server, 0, "shoal-observed")
        with observed_stack(env, tmp_path_factory.mktemp("logs")) as observed:
            yield observed
