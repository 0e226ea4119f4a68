"""The `shoal` command: one Typer app; each group of commands lives in its own module."""

from __future__ import annotations

from shoal.cli import batch, jobs, keys, report, say, up, voices, watch  # noqa: F401  register
from shoal.cli.app import app, console

__all__ = ["app", "console"]
