"""Redis stopped mid-test: degraded answers from the local copy, then recovery by itself.

Uses the embedded server (serving.connection) of a private data directory, never a shared
server.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from api_helpers import ids, publish, recs
from fastapi.testclient import TestClient

from serving.connection import embedded_url, stop_embedded
from serving.store import Store


class RedisProcess:
    """The embedded server of a private data directory (serving.connection), which we stop
    (it saves its data) and start again."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    @property
    def url(self) -> str:
        return f"unix://{self.dir / 'redis.sock'}?db=0"

    def start(self) -> None:
        assert embedded_url(self.dir) == self.url

    def stop(self) -> None:
        stop_embedded(self.dir)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisProcess]:
    proc = RedisProcess(tmp_path)
    proc.start()
    yield proc
    proc.stop()


def until(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_redis_down_degrades_then_recovers(
    server: RedisProcess, make_client: Callable[..., TestClient], redis_prefix: str
) -> None:
    store = Store(redis.Redis.from_url(server.url), prefix=redis_prefix)
    publish(store, "v1")
    client = make_client(server.url, breaker_retry_s=0.2, redis_timeout_s=0.2)
    healthy = recs(client, "c1", n=3)
    assert healthy["degraded"] is False

    server.stop()
    down = recs(client, "c1", n=3)
    assert down["degraded"] is True and down["version"] == "v1"
    assert ids(down) == ["i20", "i19", "i18"]  # the local popular copy
    assert recs(client, "c1", n=3, category="Books")["items"][0]["reason"].startswith(
        "trending in Books"
    )
    assert client.get("/v1/items/i3/similar").json()["degraded"] is True
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["cause"] == "redis_unavailable"
    event = {"customer_id": "c1", "item_id": "i1", "event_type": "view"}
    r = client.post("/v1/events", json=event)
    assert r.status_code == 503 and "retry" in r.json()["detail"]
    r = client.post("/v1/email/recommendations", json={"customer_ids": ["c1"], "n": 2})
    assert r.status_code == 200 and r.json()["degraded"] is True
    # a restart while Redis is down still answers, from the persisted copy
    restarted = make_client(server.url, redis_timeout_s=0.2)
    assert ids(recs(restarted, "c9", n=2)) == ["i20", "i19"]
    metrics = client.get("/metrics").text
    assert 'cause="redis_unavailable",endpoint="recommendations"' in metrics
    assert "recsys_breaker_open 1.0" in metrics

    server.start()
    assert until(lambda: recs(client, "c1", n=3)["degraded"] is False)
    assert recs(client, "c1", n=3) == healthy
    assert client.get("/readyz").status_code == 200
    assert until(lambda: recs(restarted, "c1", n=3)["degraded"] is False)


def test_local_copy_round_trip_keeps_only_list_items(tmp_path: Path) -> None:
    import numpy as np
    from api_helpers import catalog

    from serving import fallback as local
    from serving.rerank import Fallback
    from serving.types import Candidates

    table = catalog("v7")
    lists = Fallback(
        popular=Candidates(np.array([20, 3], np.int32), np.array([2.0, 1.0], np.float32)),
        trending_by_category={"Books": Candidates(np.array([5], np.int32), np.ones(1, np.float32))},
    )
    copy = local.local_copy(table, lists, now=123.0)
    assert copy.table.item_ids.tolist() == ["i3", "i5", "i20"]
    path = tmp_path / "sub" / "copy.json"
    local.save(copy, path)
    loaded = local.load(path)
    assert loaded is not None and loaded.version == "v7" and loaded.saved_at == 123.0
    ids = loaded.table.item_ids[loaded.fallback.popular.items].tolist()
    assert ids == ["i20", "i3"]
    books = loaded.fallback.trending_by_category["Books"]
    assert loaded.table.item_ids[books.items].tolist() == ["i5"]
    assert np.array_equal(loaded.table.price, copy.table.price)
    path.write_text("{broken")
    assert local.load(path) is None
    assert local.load(tmp_path / "missing.json") is None
