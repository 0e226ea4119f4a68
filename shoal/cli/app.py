"""The Typer app every command module adds itself to."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Queue-based text-to-speech.")
console = Console(stderr=True)


@app.callback()
def main() -> None:
    """shoal: queue-based, asynchronous text-to-speech."""
