"""`shoal watch`: the queue, the worker pool and time to audio, live and into a CSV."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import Annotated

import httpx
import typer

from shoal.cli.app import app, console

EXTRA = "pip install 'shoal[loadtest]' (make install-dev has it)"


@app.command()
def watch(
    url: Annotated[str, typer.Option(help="The gateway.")] = "http://127.0.0.1:8000",
    api_key: Annotated[str, typer.Option(envvar="SHOAL_WATCH_API_KEY", help="Bearer key.")] = "",
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between samples.")] = 1.0,
    window: Annotated[
        float, typer.Option(min=1, max=600, help="Seconds of completions per percentile.")
    ] = 30.0,
    csv: Annotated[Path | None, typer.Option(help="Write every sample to this CSV.")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    live: Annotated[bool, typer.Option(help="The live terminal view.")] = True,
    kubernetes: Annotated[
        bool, typer.Option(help="Replicas from the cluster (Deployment, HPA, ScaledObject).")
    ] = False,
    namespace: Annotated[str, typer.Option(help="With --kubernetes.")] = "shoal",
    deployment: Annotated[str, typer.Option(help="With --kubernetes.")] = "worker-tts",
    scaledobject: Annotated[str, typer.Option(help="With --kubernetes.")] = "worker-tts",
    kubeconfig: Annotated[
        Path | None, typer.Option(help="With --kubernetes; default: $KUBECONFIG or ~/.kube/config.")
    ] = None,
    context: Annotated[str | None, typer.Option(help="With --kubernetes.")] = None,
) -> None:
    """Sample waiting and running jobs, the worker replicas and time to audio."""
    try:
        from loadtest.cluster import ClusterReader, ClusterUnavailable
        from loadtest.watch import Sampler
        from loadtest.watch import watch as run
    except ImportError as exc:
        console.print(f"[bold red]shoal watch[/] needs the load-test tools: {EXTRA} ({exc})")
        raise typer.Exit(2) from exc
    cluster = None
    if kubernetes:
        try:
            cluster = ClusterReader(namespace, deployment, scaledobject, kubeconfig, context)
        except ClusterUnavailable as exc:
            console.print(f"[bold red]shoal watch --kubernetes:[/] {exc}")
            raise typer.Exit(2) from exc
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=url, headers=headers, timeout=10) as http:
        taken = run(
            Sampler(http, window, cluster),
            interval,
            csv,
            duration,
            live=live,
            stop=lambda: stopping,
            on_error=lambda exc: console.print(f"[yellow]sample skipped:[/] {exc}"),
        )
    console.print(f"{taken} samples" + (f" in {csv}" if csv else ""))
