"""The `shoal` command."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.console import Console

from shoal.logs import configure_logging
from shoal.settings import get_settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Queue-based text-to-speech.")
console = Console(stderr=True)


@app.callback()
def main() -> None:
    """shoal: queue-based, asynchronous text-to-speech."""


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


if __name__ == "__main__":
    app()
