"""Fixtures of the API tests: the real app (TestClient) against a real Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.api.main import create_app
from serving.settings import Settings


@pytest.fixture
def make_client(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> Iterator[Callable[..., TestClient]]:
    """Build a TestClient over a fresh app (several may share one fallback file)."""
    clients: list[TestClient] = []

    def build(url: str | None = None, **overrides: object) -> TestClient:
        settings = Settings(
            redis_url=url or redis_url,
            redis_prefix=redis_prefix,
            fallback_path=tmp_path / "fallback.json",
            **overrides,  # type: ignore[arg-type]
        )
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()
