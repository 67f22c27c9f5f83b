"""CLI command: demo (the end-to-end run behind ``make demo``)."""

from __future__ import annotations

from recsys.cli import app  # noqa: F401
