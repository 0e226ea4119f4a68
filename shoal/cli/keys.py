"""`shoal keys create|list|revoke`: managed API keys, kept hashed in Redis."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import redis
import typer
from rich.table import Table

from shoal import api_keys
from shoal.cli.app import app, console
from shoal.settings import get_settings

keys_app = typer.Typer(no_args_is_help=True, help="Managed API keys (SHOAL_REDIS_URL).")
app.add_typer(keys_app, name="keys")


def _redis() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis_url, decode_responses=True, socket_timeout=10)


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="Who or what the key is for.")],
) -> None:
    """Make a key and print it once (only its hash is kept); keys are required from now on."""
    record, key = api_keys.create(_redis(), name)
    console.print(
        f"[bold]{record.id}[/] ({record.name}): every gateway on this Redis requires an "
        "API key from now on. The key, shown only now:",
        highlight=False,
    )
    print(key)  # stdout alone, so `shoal keys create --name ci > key.txt` works


@keys_app.command("list")
def list_() -> None:
    """The managed keys: id, name, creation time (never the keys themselves)."""
    table = Table("id", "name", "created")
    for record in api_keys.list_keys(_redis()):
        table.add_row(record.id, record.name, _when(record.created_at))
    console.print(table)


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id (shoal keys list).")]) -> None:
    """Revoke a key at once: every gateway refuses it from the next request."""
    record = api_keys.revoke(_redis(), key_id)
    if record is None:
        console.print(f"[red]no managed key {key_id!r}[/]")
        raise typer.Exit(1)
    console.print(f"revoked {record.id} ({record.name})", highlight=False)
