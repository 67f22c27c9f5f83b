"""The ``recsys`` command line: one typer app, each group of commands in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="recsys",
    help="Personalization engine for e-commerce: ingest, train, evaluate, publish, serve.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def _register() -> None:
    # Each module adds its commands to ``app``; imports stay light (heavy libraries are
    # imported inside the commands) so ``recsys --help`` is fast.
    from recsys.cli import data, serve, train  # noqa: F401


_register()
