"""`shoal voices add|list|rm`: cloned voices, and the engine's own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from shoal.cli.app import app, console
from shoal.cli.common import DEFAULT, ApiKeyOption, UrlOption, gateway, stdout

voices = typer.Typer(
    help="Clone voices from recordings, list and remove them.", no_args_is_help=True
)
app.add_typer(voices, name="voices")


@voices.command()
def add(
    recording: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="2-30 s of speech.")
    ],
    transcript: Annotated[str, typer.Option(help="Exactly what the recording says.")],
    name: Annotated[str | None, typer.Option(help="A label for people.")] = None,
    url: UrlOption = DEFAULT,
    api_key: ApiKeyOption = None,
) -> None:
    """Clone a voice; prints its id, to pass as --voice."""
    with gateway(url, api_key) as client:
        voice = client.create_voice(recording.read_bytes(), transcript, name)
    console.print(f"[green]created[/] {voice.name or 'voice'} ({voice.duration_seconds:.1f} s)")
    typer.echo(voice.id)


@voices.command("list")
def list_voices(
    all_voices: Annotated[bool, typer.Option("--all", help="The engine's voices too.")] = False,
    url: UrlOption = DEFAULT,
    api_key: ApiKeyOption = None,
) -> None:
    """The cloned voices (and with --all the engine's own)."""
    with gateway(url, api_key) as client:
        listed = client.voices()
    table = Table("id", "name", "kind", "language / length")
    for cloned in listed.cloned_voices:
        table.add_row(cloned.id, cloned.name or "", "cloned", f"{cloned.duration_seconds:.1f} s")
    if all_voices:
        for voice in listed.voices:
            table.add_row(voice.id, voice.name, listed.engine, voice.language or "")
    stdout.print(table)
    cloning = "speaks cloned voices" if listed.cloning else "cannot speak cloned voices"
    console.print(
        f"{listed.engine}: {len(listed.voices)} voices of its own, {cloning}; "
        f"{len(listed.cloned_voices)} cloned"
    )


@voices.command()
def rm(
    voice_id: Annotated[str, typer.Argument(help="The voice's id (voice_...).")],
    url: UrlOption = DEFAULT,
    api_key: ApiKeyOption = None,
) -> None:
    """Delete a cloned voice and its recording."""
    with gateway(url, api_key) as client:
        client.delete_voice(voice_id)
    console.print(f"[green]deleted[/] {voice_id}")
