"""The supervisor: restarts with back-off, fatal exit codes, ordered stop."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from shoal.local.processes import FatalExit, ProcessSpec, Supervisor


def python(code: str, **kwargs: object) -> ProcessSpec:
    return ProcessSpec(name="child", argv=[sys.executable, "-c", code], **kwargs)  # type: ignore[arg-type]


def poll_until(supervisor: Supervisor, condition, timeout: float = 10) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        supervisor.poll()
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_dead_child_is_restarted_with_backoff() -> None:
    supervisor = Supervisor()
    child = supervisor.start(python("import sys; sys.exit(1)"))
    try:
        poll_until(supervisor, lambda: child.restarts >= 2)
        # It kept dying at once: the pause before the next start grows.
        assert child.backoff >= 2.0
    finally:
        supervisor.stop_all()


def test_a_fatal_exit_code_stops_supervision() -> None:
    supervisor = Supervisor()
    supervisor.start(python("import sys; sys.exit(2)", fatal_exit_codes=frozenset({2})))
    try:
        with pytest.raises(FatalExit, match="exited with code 2"):
            poll_until(supervisor, lambda: False)
    finally:
        supervisor.stop_all()


def test_stop_all_stops_in_reverse_order(tmp_path: Path) -> None:
    order = tmp_path / "order"
    code = (
        "import signal, sys, time\n"
        "def bye(*_):\n"
        f"    open({str(order)!r}, 'a').write(sys.argv[1] + '\\n'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    supervisor = Supervisor()
    children = [
        supervisor.start(
            ProcessSpec(name=n, argv=[sys.executable, "-c", code, n], log_file=tmp_path / n)
        )
        for n in ("first", "second", "third")
    ]
    for child in children:
        poll_until(supervisor, lambda c=child: "ready" in (tmp_path / c.spec.name).read_text())
    supervisor.stop_all()
    assert order.read_text().split() == ["third", "second", "first"]
    assert all(not child.alive() for child in children)


def test_a_child_that_ignores_sigterm_is_killed() -> None:
    supervisor = Supervisor()
    child = supervisor.start(
        python(
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)",
            stop_timeout=0.5,
        )
    )
    time.sleep(0.3)
    started = time.monotonic()
    supervisor.stop_all()
    assert not child.alive()
    assert time.monotonic() - started < 5


def test_a_retired_child_leaves_for_good_and_one_that_lingers_is_killed(tmp_path: Path) -> None:
    supervisor = Supervisor()
    # Finishes its "job" on SIGTERM, then exits 0 (a warm shutdown).
    marker = tmp_path / "finished"
    warm = supervisor.start(
        python(
            "import signal, sys, time, pathlib\n"
            "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(0.5),"
            f" pathlib.Path({str(marker)!r}).write_text('done'), sys.exit(0)))\n"
            "time.sleep(60)"
        )
    )
    stubborn = supervisor.start(
        python("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)")
    )
    try:
        time.sleep(0.5)  # both installed their handlers
        supervisor.retire(warm, timeout=30)
        supervisor.retire(stubborn, timeout=1)
        poll_until(supervisor, lambda: not supervisor.children, timeout=20)
        assert marker.read_text() == "done"
        assert warm.process.returncode == 0 and warm.restarts == 0
        assert stubborn.process.returncode == -9 and stubborn.restarts == 0
    finally:
        supervisor.stop_all()
