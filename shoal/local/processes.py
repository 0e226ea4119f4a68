"""Child processes that are started in order, restarted when they die, stopped in reverse.

Each child gets its own session (Ctrl-C reaches only the supervisor, which
then stops children in order) and is sent SIGTERM by the kernel if the
supervisor itself dies, so nothing it started outlives it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shoal.logs import get_logger

log = get_logger(__name__)
_PR_SET_PDEATHSIG = 1
MAX_BACKOFF_SECONDS = 30.0
# A child that ran this long before dying is restarted at once, not backed off.
HEALTHY_SECONDS = 10.0


class FatalExit(RuntimeError):
    """A child exited with a code that says restarting it cannot help."""


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class ProcessSpec:
    name: str
    argv: list[str]
    env: dict[str, str] | None = None
    log_file: Path | None = None  # None: share the supervisor's stdout/stderr
    restart: bool = True
    stop_timeout: float = 10.0
    fatal_exit_codes: frozenset[int] = frozenset()


@dataclass
class Managed:
    spec: ProcessSpec
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    restarts: int = 0
    backoff: float = 0.0
    restart_at: float | None = None
    retire_by: float | None = None  # asked to leave (SIGTERM); killed if still there then

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None


def spawn(spec: ProcessSpec) -> subprocess.Popen[bytes]:
    output = None
    if spec.log_file is not None:
        spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        output = spec.log_file.open("ab")
    try:
        return subprocess.Popen(
            spec.argv,
            env=spec.env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    finally:
        if output is not None:
            output.close()


def stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM (a warm shutdown for Celery), then SIGKILL after `timeout`."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Supervisor:
    def __init__(self, on_restart: Callable[[Managed], None] | None = None) -> None:
        self.children: list[Managed] = []
        self.on_restart = on_restart

    def start(self, spec: ProcessSpec) -> Managed:
        managed = Managed(spec, spawn(spec))
        self.children.append(managed)
        log.debug("process started", process=spec.name, pid=managed.pid)
        return managed

    def poll(self, starting: bool = False) -> None:
        """Restart children that died; raise FatalExit for one that cannot be helped.

        While `starting`, any death is fatal: a process that cannot come up once
        will not come up by being restarted in a loop.
        """
        now = time.monotonic()
        self._reap_retired(now)
        for child in self.children:
            code = child.process.poll()
            if code is None or child.retire_by is not None:
                continue
            if starting or code in child.spec.fatal_exit_codes:
                raise FatalExit(f"{child.spec.name} exited with code {code}")
            if not child.spec.restart:
                continue
            if child.restart_at is None:
                ran = now - child.started
                child.backoff = (
                    0.0
                    if ran >= HEALTHY_SECONDS
                    else min(MAX_BACKOFF_SECONDS, max(1.0, child.backoff * 2))
                )
                child.restart_at = now + child.backoff
                log.warning(
                    "process died; restarting",
                    process=child.spec.name,
                    exit_code=code,
                    in_seconds=child.backoff,
                )
            if now >= child.restart_at:
                child.process = spawn(child.spec)
                child.started, child.restart_at = now, None
                child.restarts += 1
                if self.on_restart is not None:
                    self.on_restart(child)

    def retire(self, child: Managed, timeout: float) -> None:
        """Ask a child to leave for good: SIGTERM now (a warm shutdown for Celery),
        SIGKILL if it is still there after `timeout`. It is not restarted."""
        child.retire_by = time.monotonic() + timeout
        if child.alive():
            child.process.terminate()
        log.info("process retiring", process=child.spec.name, pid=child.pid)

    def _reap_retired(self, now: float) -> None:
        for child in [c for c in self.children if c.retire_by is not None]:
            if not child.alive():
                self.children.remove(child)
                log.info("process retired", process=child.spec.name, exit_code=child.process.poll())
            elif now > (child.retire_by or now):
                log.warning("process did not leave in time; killing it", process=child.spec.name)
                child.process.kill()

    def stop_all(self) -> None:
        """Stop children in the reverse order of their start; wait for each."""
        for child in reversed(self.children):
            stop(child.process, child.spec.stop_timeout)
        self.children.clear()

    def signal_all(self, signum: int) -> None:
        for child in self.children:
            if child.alive():
                os.kill(child.pid, signum)
