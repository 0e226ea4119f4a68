"""What the benchmarks share: services on loopback ports, wrk, tables."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from shoal.local.ports import free_port, wait_for_port
from shoal.local.processes import ProcessSpec, spawn, stop
from shoal.local.redis_server import RedisServer
from shoal.local.s3_server import SeaweedS3

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Backends:
    redis_url: str
    env: dict[str, str]  # SHOAL_ settings pointing at these services


@contextmanager
def backends(stack: ExitStack | None = None) -> Iterator[Backends]:
    """A private redis-server and SeaweedFS for one benchmark run."""
    root = Path(tempfile.mkdtemp(prefix="shoal-bench-"))
    redis_server = RedisServer(root / "redis", free_port(), durable=False)
    s3 = SeaweedS3(root / "s3")
    processes = [spawn(redis_server.spec())]
    try:
        redis_server.wait_ready()
        processes.append(spawn(s3.spec()))
        s3.wait_ready()
        env = {
            **s3.env(),
            "SHOAL_REDIS_URL": redis_server.url,
            "SHOAL_S3_BUCKET": "shoal-bench",
            "SHOAL_LOG_LEVEL": "WARNING",
        }
        yield Backends(redis_server.url, env)
    finally:
        for process in reversed(processes):
            stop(process, timeout=10)
        s3.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def process_env(**settings: str) -> dict[str, str]:
    return {**os.environ, **settings}


@dataclass
class Server:
    url: str
    pid: int

    def cpu_seconds(self) -> float:
        """User + system CPU the server process has used: robust to a noisy machine."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def server(app: str, env: dict[str, str]) -> Iterator[Server]:
    """One uvicorn process (uvloop, httptools), no access log: as deployed."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--no-access-log", "--log-level", "warning"]
    spec = ProcessSpec(name="bench-gateway", argv=argv, env=env)
    process = spawn(spec)
    try:
        assert wait_for_port(port, 30), f"{app} did not start"
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while httpx.get(url + "/healthz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        yield Server(url, process.pid)
    finally:
        stop(process, timeout=10)


@dataclass
class WrkResult:
    requests_per_second: float
    requests: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    server_cpu_ms: float = 0.0  # server CPU per request, filled in by the caller


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    assert match, text
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(url: str, body: str, seconds: int, connections: int) -> WrkResult:
    """POST `body` as fast as `connections` keep-alive connections allow."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk (make bench installs it)")
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script)]
    try:
        output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    finally:
        script.unlink()
    latency = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)\s*$", output, re.MULTILINE))
    if len(latency) != 3:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+)", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    assert rate is not None and total is not None, output
    return WrkResult(
        requests_per_second=float(rate.group(1)),
        requests=int(total.group(1)),
        p50_ms=_ms(latency["50"]),
        p90_ms=_ms(latency["90"]),
        p99_ms=_ms(latency["99"]),
        errors=(int(errors.group(1)) if errors else 0)
        + (sum(map(int, socket_errors.groups())) if socket_errors else 0),
    )


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [headers, *[[_fmt(v) for v in row] for row in rows]]
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(headers))]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    return str(value)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def save(name: str, data: dict[str, object]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2))
    return path
