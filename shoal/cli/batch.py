"""`shoal submit --file lines.txt -o DIR`: one job per line, resumable.

Each line's job carries an Idempotency-Key made from the line (its number,
text and options), so running the command again after a crash or Ctrl-C
finds the jobs it already made instead of making them twice; lines whose
audio is already in DIR are skipped, failed ones are tried anew. DIR ends up
with one audio file per line and `summary.json`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shoal.cli.app import app, console
from shoal.cli.common import DEFAULT, EXIT_FAILED, ApiKeyOption, UrlOption, gateway, stdout
from shoal.client import Client, Job, JobStatus
from shoal.jobs import AudioFormat

SUMMARY = "summary.json"


def _key(number: int, text: str, options: dict[str, Any], tries: int) -> str:
    material = json.dumps([number, text, options, tries], sort_keys=True).encode()
    return "shoal-submit-" + hashlib.sha256(material).hexdigest()[:40]


def _load(directory: Path) -> dict[int, dict[str, Any]]:
    path = directory / SUMMARY
    if not path.exists():
        return {}
    return {item["line"]: item for item in json.loads(path.read_text())["items"]}


def _save(directory: Path, items: dict[int, dict[str, Any]], source: Path) -> None:
    ordered = [items[number] for number in sorted(items)]
    counts: dict[str, int] = {}
    for item in ordered:
        counts[item["status"]] = counts.get(item["status"], 0) + 1
    seconds = sum(item.get("duration_seconds") or 0 for item in ordered)
    summary = {"source": str(source), "counts": counts, "audio_seconds": round(seconds, 3)}
    temporary = directory / f".{SUMMARY}.tmp"
    temporary.write_text(json.dumps({**summary, "items": ordered}, indent=2, ensure_ascii=False))
    temporary.replace(directory / SUMMARY)  # a crash never leaves half a summary


def _done(item: dict[str, Any] | None, directory: Path) -> bool:
    return bool(item and item["status"] == "succeeded" and (directory / item["file"]).exists())


def _record(item: dict[str, Any], job: Job) -> None:
    item.update(job_id=job.id, status=job.status.value, error=None, duration_seconds=None)
    if job.error is not None:
        item["error"] = f"{job.error.code}: {job.error.message}"
    if job.audio is not None:
        item["duration_seconds"] = job.audio.duration_seconds


def _finish(client: Client, item: dict[str, Any], directory: Path, timeout: float) -> None:
    job = client.wait(item["job_id"], seconds=timeout)
    if job.status is JobStatus.SUCCEEDED:
        (directory / item["file"]).write_bytes(client.audio(job.id))
    _record(item, job)


@app.command()
def submit(
    file: Annotated[
        Path, typer.Option("--file", exists=True, dir_okay=False, help="One text per line.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for audio + summary.")],
    voice: Annotated[str | None, typer.Option(help="A voice id (shoal voices list).")] = None,
    audio_format: Annotated[AudioFormat, typer.Option("--format", "-f")] = AudioFormat.WAV,
    language: Annotated[str | None, typer.Option(help="BCP-47 tag, e.g. de or zh.")] = None,
    timeout: Annotated[float, typer.Option(help="Longest wait for one job, in s.")] = 600.0,
    url: UrlOption = DEFAULT,
    api_key: ApiKeyOption = None,
) -> None:
    """Speak each non-empty line of FILE as its own job; the audio files land in OUTPUT."""
    lines = {n: t.strip() for n, t in enumerate(file.read_text().splitlines(), 1) if t.strip()}
    output.mkdir(parents=True, exist_ok=True)
    items = _load(output)
    options = {"voice": voice, "format": audio_format.value, "language": language}
    width = len(str(max(lines, default=1)))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with (
        gateway(url, api_key) as client,
        Progress(*columns, TimeElapsedColumn(), console=console) as progress,
    ):
        pending = [n for n in lines if not _done(items.get(n), output)]
        queued = progress.add_task("submitting", total=len(pending))
        for number in pending:
            previous = items.get(number, {})
            tries = previous.get("tries", 0) + (previous.get("status") in ("failed", "canceled"))
            item = {"line": number, "text": lines[number], "tries": tries}
            item["file"] = f"{number:0{width}d}.{audio_format.value}"
            key = _key(number, lines[number], options, tries)
            _record(item, client.submit(lines[number], idempotency_key=key, **options))
            items[number] = item
            progress.advance(queued)
        _save(output, items, file)
        spoken = progress.add_task("synthesizing", total=len(lines))
        progress.advance(spoken, len(lines) - len(pending))
        for number in pending:
            _finish(client, items[number], output, timeout)
            _save(output, items, file)
            progress.advance(spoken)
    failed = [items[n] for n in sorted(lines) if items[n]["status"] != "succeeded"]
    stdout.print(
        f"{len(lines) - len(failed)} of {len(lines)} lines spoken into {output} "
        f"({len(pending)} this run); summary in {output / SUMMARY}",
        highlight=False,
    )
    for item in failed:
        stdout.print(f"line {item['line']}: {item['status']}: {item['error']}", highlight=False)
    if failed:
        raise typer.Exit(EXIT_FAILED)
