"""`python -m worker --queues tts|webhooks`: load what the queue needs, then consume.

Loading happens before the first message is taken, and a worker that cannot
start (engine missing, no webhook secret) exits at once with the reason (exit
code 2) instead of taking work it would fail. Synthesis runs in one process,
in a pool of as many threads as the engine has slots (one for espeak, the
batch size for a batching Fish Speech engine), each holding one message: a GPU
is never touched by a forked child, and SIGTERM means a warm shutdown that
finishes every job in flight. Webhook delivery runs in a thread pool on cheap
CPU workers.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from prometheus_client import start_http_server

from shoal import keys
from shoal.logs import configure_logging, get_logger
from shoal.settings import get_settings
from worker.lifetime import Lifetime
from worker.runtime import default_name, start_runtime, stop_runtime

cli = typer.Typer(add_completion=False)


@cli.command()
def main(
    queues: Annotated[
        str, typer.Option(help="Comma-separated queues to consume.")
    ] = keys.TTS_QUEUE,
    name: Annotated[str | None, typer.Option(help="Worker name (unique per process).")] = None,
    max_jobs: Annotated[
        int, typer.Option(min=0, help="Leave (warm) after this many jobs; 0 = never. For Jobs.")
    ] = 0,
    idle_exit: Annotated[
        float,
        typer.Option(min=0, help="Leave when no job started for this many seconds; 0 = never."),
    ] = 0.0,
) -> None:
    settings = get_settings()
    configure_logging(settings, component="worker")
    log = get_logger("worker")
    queue_list = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = set(queue_list) - set(keys.QUEUES)
    if unknown:
        raise typer.BadParameter(f"unknown queue(s) {sorted(unknown)}; known: {list(keys.QUEUES)}")
    if len(queue_list) != 1:
        # A GPU worker only synthesizes; a slow webhook receiver must never hold a GPU.
        raise typer.BadParameter("give exactly one queue: tts or webhooks")
    worker_name = name or default_name(queue_list)
    try:
        runtime = start_runtime(settings, worker_name, queue_list)
    except Exception as exc:
        log.error("worker cannot start", error=str(exc), exc_info=True)
        print(f"shoal worker cannot start: {exc}", file=sys.stderr)
        raise typer.Exit(2) from exc
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port)

    if max_jobs or idle_exit:  # a pod of a KEDA ScaledJob: end when the work is done
        Lifetime(max_jobs, idle_exit).install()

    import worker.tasks  # noqa: F401  registers the tasks
    from worker.celery_app import app

    try:
        app.worker_main(
            [
                "--quiet",  # no banner: the structured log says the same in one line
                "worker",
                f"--queues={','.join(queue_list)}",
                *_pool(queue_list[0], runtime.slots),
                f"--hostname={worker_name}",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                f"--loglevel={settings.log_level}",
            ]
        )
    finally:
        stop_runtime()


def _pool(queue: str, slots: int) -> list[str]:
    """Threads, never forked children: one per engine slot, or per webhook in flight.

    With prefetch 1 and acks_late each thread holds exactly one message, so the
    worker never reserves work it is not doing.
    """
    return ["--pool=threads", f"--concurrency={slots}"]


if __name__ == "__main__":
    cli()
