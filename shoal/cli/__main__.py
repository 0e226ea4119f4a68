"""`python -m shoal.cli`."""

from shoal.cli import app

app()
