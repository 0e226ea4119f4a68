"""The liveness probe reads the heartbeat file, nothing else."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.settings import get_settings
from tests.conftest import Live
from worker import probe


@pytest.fixture
def alive_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "alive"
    monkeypatch.setenv("SHOAL_WORKER_ALIVE_FILE", str(path))
    monkeypatch.setenv("SHOAL_LEASE_SECONDS", "5")
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()


def test_missing_file_means_not_started(alive_file: Path) -> None:
    assert probe.main() == 1


def test_fresh_heartbeat_is_alive(alive_file: Path) -> None:
    alive_file.touch()
    assert probe.main() == 0


def test_stale_heartbeat_is_dead(alive_file: Path) -> None:
    alive_file.touch()
    old = time.time() - 60
    os.utime(alive_file, (old, old))
    assert probe.main() == 1


def test_a_running_worker_keeps_it_fresh(live: Live) -> None:
    alive = Path(live.env.values["SHOAL_WORKER_ALIVE_FILE"])
    first = alive.stat().st_mtime
    time.sleep(1.0)  # a heartbeat is lease / 3 = 0.5 s in the tests
    assert alive.stat().st_mtime > first
