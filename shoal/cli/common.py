"""What the client commands share: where the gateway is, and how errors are shown."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console

from shoal.cli.app import console
from shoal.client import DEFAULT_URL, Client, ConnectionFailed, Job, ShoalClientError
from shoal.client._sync import poll_interval

UrlOption = Annotated[
    str, typer.Option("--url", envvar="SHOAL_URL", help="The gateway.", show_default=True)
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option("--api-key", envvar="SHOAL_API_KEY", help="API key, when the gateway wants one."),
]
DEFAULT = DEFAULT_URL
stdout = Console(soft_wrap=True)  # results; progress and messages go to stderr
EXIT_FAILED = 1


@contextmanager
def gateway(url: str, api_key: str | None) -> Iterator[Client]:
    """A client of the gateway; any client error ends the command with a clear message."""
    try:
        with Client(url, api_key) as client:
            yield client
    except ConnectionFailed as exc:
        console.print(
            f"[red]cannot reach the gateway at {url}[/]: {exc}\n"
            "Is it running (`shoal up`)? Point at another with --url or SHOAL_URL.",
            highlight=False,
        )
        raise typer.Exit(EXIT_FAILED) from exc
    except ShoalClientError as exc:
        console.print(f"[red]error[/]: {exc}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from exc


def follow(client: Client, job: Job, report: Callable[[Job, float], None]) -> Job:
    """Poll the job until it is finished, telling `report` each state and the time so far."""
    started = time.monotonic()
    for round_ in itertools.count():
        report(job, time.monotonic() - started)
        if job.status.is_terminal:
            return job
        time.sleep(poll_interval(round_))
        job = client.get(job.id)
    raise AssertionError("unreachable")  # pragma: no cover
