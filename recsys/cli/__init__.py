"""The ``recsys`` command line: one typer app, each group of commands in its own module.

Modules: ``data`` (synth, ingest, build), ``train`` (train, tune, runs, promote),
``publish`` (publish, rollback, export-events), ``api`` (serve, email-export), ``demo``,
``redis_server`` (redis status|start|stop: the embedded Redis).
Heavy libraries are imported inside the commands so ``recsys --help`` stays fast.
"""

from __future__ import annotations

import typer

from recsys import __version__

app = typer.Typer(
    name="recsys",
    help="Personalization engine for e-commerce: ingest, train, evaluate, publish, serve.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.command()
def version() -> None:
    """Print the recsys version."""
    typer.echo(__version__)


def _register() -> None:
    from recsys.cli import api, data, demo, publish, redis_server, train  # noqa: F401


_register()
