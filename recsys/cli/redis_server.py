"""CLI commands: ``recsys redis status|start|stop``, the embedded Redis server of a data dir.

Without ``REDIS_URL`` every ``recsys`` command shares one ``redis-server`` per data directory
(``RECSYS_REDIS_DIR``, default ``~/.cache/recsys/redis``), started on demand and persisted
(see ``serving.connection``). These commands show, start and stop it. With ``REDIS_URL`` set,
Redis is the user's own server: ``status`` shows it, ``start`` and ``stop`` refuse.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from recsys.cli import app
from recsys.cli.data import _fail  # the CLI's one error form: a clear message, exit code 2

console = Console()
redis_app = typer.Typer(
    help="The embedded Redis server (used when REDIS_URL is not set): status, start, stop.",
    no_args_is_help=True,
)
app.add_typer(redis_app, name="redis")

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help="Data directory of the embedded server (default: RECSYS_REDIS_DIR, "
        "else ~/.cache/recsys/redis).",
    ),
]


def _user_url() -> str | None:
    """``REDIS_URL`` with any password hidden, or None when it is not set."""
    url = os.environ.get("REDIS_URL")
    if not url:
        return None
    from redis.connection import parse_url

    password = parse_url(url).get("password")
    return url.replace(f":{password}@", ":***@") if password else url


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _user_server_status(shown: str) -> None:
    import redis

    table = Table(title="Redis (REDIS_URL: your own server)", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("url", shown)
    try:
        client = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=5.0)
        info = client.info()
        keys = client.dbsize()
        client.close()
    except redis.exceptions.RedisError as error:
        table.add_row("running", f"[red]no answer[/] ({error})")
        console.print(table)
        return
    table.add_row("running", "[green]yes[/]")
    table.add_row("version", str(info.get("redis_version")))
    table.add_row("persistence", f"aof_enabled={info.get('aof_enabled')}")
    table.add_row("memory", str(info.get("used_memory_human")))
    table.add_row("keys (this db)", f"{keys:,}")
    console.print(table)


@redis_app.command()
def status(data_dir: DataDir = None) -> None:
    """Show the embedded server: running or not, socket, pid, data dir, persistence, size."""
    shown = _user_url()
    if shown:
        _user_server_status(shown)
        return
    from serving.connection import embedded_status

    state = embedded_status(data_dir)
    table = Table(title="embedded Redis", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    if state.running:
        table.add_row("running", f"[green]yes[/] (pid {state.pid})")
    else:
        note = "; stale pid file from a crash" if state.stale_pid else ""
        table.add_row("running", f"no (starts on demand, or `recsys redis start`{note})")
    table.add_row("url", state.url)
    table.add_row("data dir", str(state.data_dir))
    if state.running:
        table.add_row(
            "persistence", f"appendonly={state.appendonly}, appendfsync={state.appendfsync}"
        )
        table.add_row("memory", str(state.used_memory))
        table.add_row("keys", f"{state.keys:,}")
    table.add_row("append-only file", _size(state.aof_bytes))
    table.add_row("snapshot (RDB)", _size(state.rdb_bytes))
    console.print(table)


@redis_app.command()
def start(data_dir: DataDir = None) -> None:
    """Start the embedded server now (every command also starts it when it needs it)."""
    if _user_url():
        raise _fail("REDIS_URL is set: Redis is your own server, started and stopped by you")
    from serving.connection import EmbeddedRedisError, embedded_status, embedded_url

    try:
        url = embedded_url(data_dir)
    except EmbeddedRedisError as error:
        raise _fail(str(error)) from error
    console.print(f"embedded Redis running (pid {embedded_status(data_dir).pid}): {url}")


@redis_app.command()
def stop(data_dir: DataDir = None) -> None:
    """Stop the embedded server cleanly: snapshot (SAVE), flush, SHUTDOWN; the data stays."""
    if _user_url():
        raise _fail("REDIS_URL is set: Redis is your own server; recsys will not stop it")
    from serving.connection import EmbeddedRedisError, embedded_dir, stop_embedded

    try:
        stopped = stop_embedded(data_dir)
    except EmbeddedRedisError as error:
        raise _fail(str(error)) from error
    where = embedded_dir(data_dir)
    if stopped:
        console.print(f"embedded Redis stopped; its data stays in {where}")
    else:
        console.print(f"embedded Redis was not running ({where})")
