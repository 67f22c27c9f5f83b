"""Shared fixtures: real Redis (REDIS_URL or the embedded server), real data gate, tmp dirs."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("RECSYS_SHARED_DATA", REPO.parent / "shared" / "data"))
ML_SMALL = SHARED_DATA / "ml-latest-small" / "ratings.csv"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_realdata(path: Path) -> Path:
    """Real data tests: skip locally when the file is missing, fail in CI."""
    if not path.exists():
        if IN_CI:
            pytest.fail(f"real data missing in CI: {path}")
        pytest.skip(f"real data not found: {path}")
    return path


@pytest.fixture
def ml_small_ratings() -> Path:
    return require_realdata(ML_SMALL)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis server: REDIS_URL (DB 13 unless the URL names one), else an embedded
    server (serving.connection) in a temporary data directory, stopped at the end."""
    url = os.environ.get("REDIS_URL")
    if url:
        if url.rstrip("/").count("/") <= 2:  # no db number in the URL
            url = url.rstrip("/") + "/13"
        yield url
        return
    from serving.connection import embedded_url, stop_embedded

    data_dir = tmp_path_factory.mktemp("redis")
    try:
        yield embedded_url(data_dir)
    finally:
        stop_embedded(data_dir)


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A unique key prefix for one test; every key under it is deleted afterwards."""
    import redis

    prefix = f"recsys-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    keys += list(client.scan_iter(match=f"*{{{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def _servers_in(data_dir: Path) -> list[int]:
    """Pids of redis-server processes started on ``data_dir`` (their socket is in it)."""
    import re
    import subprocess

    pattern = "redis-server unixsocket:" + re.escape(f"{data_dir}/")
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


@pytest.fixture
def embedded_env(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """(data dir, environment) for ``recsys`` subprocesses on their own embedded server:
    ``RECSYS_REDIS_DIR`` set, ``REDIS_URL`` removed. Afterwards the server is stopped, the dir
    removed, and no redis-server of that dir may be left running."""
    import shutil
    import signal

    from serving.connection import stop_embedded

    data_dir = tmp_path / "redis"
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "RECSYS_REDIS_URL"}}
    env["RECSYS_REDIS_DIR"] = str(data_dir)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    try:
        yield data_dir, env
    finally:
        stop_embedded(data_dir)
        leaked = _servers_in(data_dir)
        for pid in leaked:
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(data_dir, ignore_errors=True)
    assert not leaked, f"redis-server left running on {data_dir}: {leaked}"


@pytest.fixture
def store(redis_url: str, redis_prefix: str) -> Iterator[Any]:
    """A ``serving.store.Store`` on the test's Redis prefix."""
    from serving.connection import connect
    from serving.store import Store

    client = connect(redis_url)
    yield Store(client, prefix=redis_prefix)
    client.close()


@pytest.fixture
def live_client(redis_url: str, redis_prefix: str, tmp_path: Path) -> Iterator[Any]:
    """An httpx client of the API behind a real uvicorn (``tests/live_server.py``), on the
    test's Redis prefix."""
    from live_server import live_api

    from serving.settings import Settings

    settings = Settings(
        redis_url=redis_url, redis_prefix=redis_prefix, fallback_path=tmp_path / "fallback.json"
    )
    with live_api(settings) as client:
        yield client
