"""``python -m recsys`` runs the CLI."""

from recsys.cli import app

app()
