"""Free-port checks: a port a previous run used is free again at once."""

from __future__ import annotations

import socket
from pathlib import Path

from shoal.local.ports import port_is_free


def _time_wait_port() -> int:
    """A port whose server closed its side of a connection first: it sits in TIME_WAIT."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = int(server.getsockname()[1])
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            accepted.close()  # the server closes first: its end goes to TIME_WAIT
            client.recv(1)  # sees the FIN, then closes too
    return port


def _states(port: int) -> set[str]:
    states = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if int(local.split(":")[1], 16) == port:
            states.add(state)
    return states


def test_a_port_in_time_wait_is_free() -> None:
    port = _time_wait_port()
    assert "06" in _states(port)  # TIME_WAIT, as after a run that served traffic
    assert port_is_free(port)


def test_a_listening_port_is_not_free() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert not port_is_free(server.getsockname()[1])
