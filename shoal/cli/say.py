"""`shoal say`: one text to one audio file, with its progress on the way."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shoal.cli.app import app, console
from shoal.cli.common import DEFAULT, EXIT_FAILED, ApiKeyOption, UrlOption, follow, gateway
from shoal.client import Job, JobStatus
from shoal.jobs import AudioFormat


def format_for(output: Path, chosen: AudioFormat | None) -> AudioFormat:
    """The format asked for, else the one the file's extension names, else WAV."""
    if chosen is not None:
        return chosen
    try:
        return AudioFormat(output.suffix.lstrip(".").lower())
    except ValueError:
        return AudioFormat.WAV


@app.command()
def say(
    text: Annotated[str, typer.Argument(help="What to say.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the audio.")],
    voice: Annotated[str | None, typer.Option(help="A voice id (shoal voices list).")] = None,
    audio_format: Annotated[
        AudioFormat | None,
        typer.Option("--format", "-f", help="Default: the extension of --output, else wav."),
    ] = None,
    language: Annotated[str | None, typer.Option(help="BCP-47 tag, e.g. de or zh.")] = None,
    speed: Annotated[float, typer.Option(min=0.25, max=4.0, help="Speaking rate.")] = 1.0,
    url: UrlOption = DEFAULT,
    api_key: ApiKeyOption = None,
) -> None:
    """Speak TEXT into a file: submit a job, follow it, download its audio."""
    fmt = format_for(output, audio_format)
    with gateway(url, api_key) as client, console.status("submitting") as status:

        def report(job: Job, seconds: float) -> None:
            status.update(f"{job.id}: [bold]{job.status}[/] ({seconds:.1f} s)")

        job = client.submit(text, voice=voice, language=language, format=fmt, speed=speed)
        job = follow(client, job, report)
        if job.status is not JobStatus.SUCCEEDED or job.audio is None:
            reason = f"{job.error.code}: {job.error.message}" if job.error else job.status
            console.print(f"[red]job {job.id} {job.status}[/]: {reason}", highlight=False)
            raise typer.Exit(EXIT_FAILED)
        status.update(f"{job.id}: downloading")
        output.write_bytes(client.audio(job.id))
    console.print(
        f"[green]saved[/] {output}: {job.audio.duration_seconds:.2f} s of {fmt} "
        f"at {job.audio.sample_rate} Hz (job {job.id})",
        highlight=False,
    )
