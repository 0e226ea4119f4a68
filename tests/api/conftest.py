"""Stacks of their own for the compatible endpoints' tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from shoal.local.redis_server import RedisServer
from shoal.local.s3_server import SeaweedS3
from tests.conftest import FAST, Live, private_redis
from tests.support import Env, gateway, running, start_worker_spec, wait_for_worker

# A job's audio takes this share of its length to make: a streamed job's pieces
# arrive over seconds, as from a GPU, so the first is heard long before the end.
PACED_RTF = "0.25"


@pytest.fixture(scope="session")
def paced_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with private_redis(tmp_path_factory.mktemp("paced-redis")) as server:
        yield server


@pytest.fixture(scope="session")
def paced(paced_redis: RedisServer, s3_server: SeaweedS3) -> Iterator[Live]:
    """A gateway and an espeak worker slowed to a GPU-like real-time factor."""
    env = Env(
        {
            **FAST,
            **s3_server.env(),
            "SHOAL_REDIS_URL": f"redis://127.0.0.1:{paced_redis.port}/0",
            "SHOAL_S3_BUCKET": "shoal-paced",
            "SHOAL_EMULATE_RTF": PACED_RTF,
        }
    )
    client = redis.Redis(port=paced_redis.port, decode_responses=True)
    name = "tts-paced@tests"
    with gateway(env) as url, running(start_worker_spec(env, name)):
        wait_for_worker(client, name)
        yield Live(url, env, client, name)
    client.close()
