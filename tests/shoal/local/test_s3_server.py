"""SeaweedFS as `shoal up` and the tests run it: no unix sockets left in /tmp."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from shoal.local.processes import spawn, stop
from shoal.local.s3_server import MAX_SOCKET_DIR, SeaweedS3
from tests.support import weed_sockets_in_tmp


@pytest.mark.parametrize("long_path", [False, True], ids=["short-data-dir", "long-data-dir"])
def test_weed_leaves_no_unix_sockets_behind(tmp_path: Path, long_path: bool) -> None:
    # A data folder too long for a socket name keeps weed's own socket paths too.
    data = tmp_path / ("d" * (MAX_SOCKET_DIR if long_path else 1))
    server = SeaweedS3(data)
    process = spawn(server.spec())
    try:
        server.wait_ready()
        server.client().create_bucket(Bucket="sockets")  # type: ignore[attr-defined]
        deadline = time.monotonic() + 20
        while not weed_sockets_in_tmp(server.ports):  # weed does make them, in /tmp
            assert time.monotonic() < deadline, "weed made no socket in /tmp: nothing is tested"
            time.sleep(0.1)
        if not long_path:  # the movable ones are in the data folder
            assert sorted(p.name for p in server.sockets() if p.parent == server.run_dir) == [
                "filer.sock",
                "s3.sock",
            ]
    finally:
        stop(process, timeout=10)
        server.cleanup()
    assert weed_sockets_in_tmp(server.ports) == []
    assert [path for path in data.rglob("*") if path.is_socket()] == []
