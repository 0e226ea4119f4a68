"""`shoal report`: a load test's watch CSV and Locust history as one PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shoal.cli.app import app, console


@app.command()
def report(
    watch_csv: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="shoal watch --csv")
    ],
    locust_csv: Annotated[
        Path | None,
        typer.Option("--locust", exists=True, dir_okay=False, help="Locust's *_stats_history.csv"),
    ] = None,
    out: Annotated[Path, typer.Option(help="The PNG to write.")] = Path("loadtest.png"),
    title: Annotated[str, typer.Option(help="The picture's title.")] = "shoal under load",
    subtitle: Annotated[str, typer.Option(help="A line under the title.")] = "",
) -> None:
    """Offered load, queue depth, replicas and time to audio on one time axis."""
    try:
        from loadtest.report import plot
    except ImportError as exc:
        console.print("[bold red]shoal report[/] needs matplotlib: pip install 'shoal[loadtest]'")
        raise typer.Exit(2) from exc
    try:
        written = plot(watch_csv, locust_csv, out, title, subtitle)
    except (ValueError, KeyError) as exc:
        console.print(f"[bold red]shoal report:[/] {watch_csv} is not a shoal watch CSV ({exc})")
        raise typer.Exit(2) from exc
    console.print(f"wrote {written}")
