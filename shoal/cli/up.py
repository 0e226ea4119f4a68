"""`shoal up`: the whole local stack in the foreground."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from shoal.cli.app import app, console
from shoal.logs import configure_logging
from shoal.settings import get_settings


@app.command()
def up(
    port: Annotated[int | None, typer.Option(help="Gateway port [env SHOAL_PORT].")] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Synthesis worker processes, without --autoscale [env SHOAL_WORKERS]."),
    ] = None,
    autoscale: Annotated[
        bool | None,
        typer.Option(
            "--autoscale/--no-autoscale",
            help="Scale the synthesis workers as KEDA would, from a ScaledObject "
            "[env SHOAL_AUTOSCALE].",
        ),
    ] = None,
    scaledobject: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="The ScaledObject to apply (implies --autoscale); default: "
            "keda/scaledobject-worker-tts.yaml with keda/local/short-windows.yaml.",
        ),
    ] = None,
) -> None:
    """Run the whole stack in the foreground: Redis, S3, gateway and workers."""
    from shoal.local.autoscale.scaledobject import ScaledObjectError, load
    from shoal.local.stack import run

    if port is not None:
        os.environ["SHOAL_PORT"] = str(port)
    if workers is not None:
        os.environ["SHOAL_WORKERS"] = str(workers)
    if autoscale is not None or scaledobject is not None:
        os.environ["SHOAL_AUTOSCALE"] = "true" if (autoscale or scaledobject) else "false"
    get_settings.cache_clear()
    settings = get_settings()
    configure_logging(settings, component="shoal-up")
    scaling = None
    if settings.autoscale:
        try:
            scaling = load(scaledobject)
        except ScaledObjectError as exc:
            console.print(f"[bold red]shoal up:[/] {exc}", highlight=False)
            raise typer.Exit(2) from exc
    pool = (
        f"workers autoscaled {scaling.min_replicas}-{scaling.max_replicas}"
        if scaling
        else f"{settings.workers} worker(s)"
    )

    def announce(url: str) -> None:
        console.print(
            f"[bold green]shoal is ready[/] at {url} ({settings.engine}, {pool}; "
            f"API docs at {url}/docs). Try:\n"
            f"  curl -s -X POST {url}/v1/jobs -H 'content-type: application/json' "
            '-d \'{"text": "Hello"}\'',
            highlight=False,
            soft_wrap=True,
        )

    raise typer.Exit(run(settings, announce, scaling))
