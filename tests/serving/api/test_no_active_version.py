"""Only a missing version degrades an answer: a decoding bug is a 500, never a silent
degraded answer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from api_helpers import publish, recs
from fastapi.testclient import TestClient

from serving.api.main import create_app
from serving.settings import Settings
from serving.store import Store


def test_no_active_version_degrades(client: TestClient) -> None:
    body = recs(client, "c1", n=3)
    assert body["degraded"] is True and body["items"] == []
    assert client.get("/readyz").json()["cause"] == "no_active_version"


def test_a_corrupt_item_table_is_an_error_not_a_degraded_answer(
    store: Store,
    make_client: Callable[..., TestClient],
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
) -> None:
    publish(store, "v1")
    healthy = recs(make_client(), "c1", n=3)
    assert healthy["degraded"] is False and healthy["version"] == "v1"
    store.client.hdel(store.keys.items("v1"), "price")  # a field the decoder needs
    settings = Settings(
        redis_url=redis_url, redis_prefix=redis_prefix, fallback_path=tmp_path / "fb.json"
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as fresh:
        r = fresh.get("/v1/customers/c1/recommendations", params={"n": 3})
        assert r.status_code == 500
        assert fresh.get("/readyz").status_code == 500
