"""CLI commands: api (filled in by its owner)."""

from __future__ import annotations

from recsys.cli import app  # noqa: F401
