"""`shoal jobs get|wait|cancel`: one job, printed as the API returns it (JSON)."""

from __future__ import annotations

from typing import Annotated

import typer

from shoal.cli.app import app, console
from shoal.cli.common import DEFAULT, EXIT_FAILED, ApiKeyOption, UrlOption, gateway
from shoal.client import Job, JobStatus

jobs = typer.Typer(help="Look at, wait for and cancel jobs.", no_args_is_help=True)
app.add_typer(jobs, name="jobs")
JobId = Annotated[str, typer.Argument(help="The job's id (job_...).")]


def show(job: Job) -> None:
    typer.echo(job.model_dump_json(indent=2))


@jobs.command()
def get(job_id: JobId, url: UrlOption = DEFAULT, api_key: ApiKeyOption = None) -> None:
    """Print the job."""
    with gateway(url, api_key) as client:
        show(client.get(job_id))


@jobs.command()
def wait(
    job_id: JobId,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 300.0,
    url: UrlOption = DEFAULT,
    api_key: ApiKeyOption = None,
) -> None:
    """Wait until the job is finished, then print it; exit 1 unless it succeeded."""
    with gateway(url, api_key) as client, console.status(f"waiting for {job_id}"):
        job = client.wait(job_id, seconds=timeout)
    show(job)
    if job.status is not JobStatus.SUCCEEDED:
        raise typer.Exit(EXIT_FAILED)


@jobs.command()
def cancel(job_id: JobId, url: UrlOption = DEFAULT, api_key: ApiKeyOption = None) -> None:
    """Cancel a queued or running job, then print it."""
    with gateway(url, api_key) as client:
        show(client.cancel(job_id))
