"""`shoal up`: the whole local stack in the foreground."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from shoal.cli.app import app, console
from shoal.logs import configure_logging
from shoal.settings import get_settings


@app.command()
def up(
    port: Annotated[int | None, typer.Option(help="Gateway port [env SHOAL_PORT].")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Synthesis worker processes [env SHOAL_WORKERS].")
    ] = None,
) -> None:
    """Run the whole stack in the foreground: Redis, S3, gateway and workers."""
    from shoal.local.stack import run

    if port is not None:
        os.environ["SHOAL_PORT"] = str(port)
    if workers is not None:
        os.environ["SHOAL_WORKERS"] = str(workers)
    get_settings.cache_clear()
    settings = get_settings()
    configure_logging(settings, component="shoal-up")

    def announce(url: str) -> None:
        console.print(
            f"[bold green]shoal is ready[/] at {url} ({settings.workers} {settings.engine} "
            f"worker(s); API docs at {url}/docs). Try:\n"
            f"  curl -s -X POST {url}/v1/jobs -H 'content-type: application/json' "
            '-d \'{"text": "Hello"}\'',
            highlight=False,
            soft_wrap=True,
        )

    raise typer.Exit(run(settings, announce))
