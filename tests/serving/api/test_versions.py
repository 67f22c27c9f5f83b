"""Publishing a second version switches answers atomically; rollback goes back."""

from __future__ import annotations

import threading
from collections.abc import Callable

from api_helpers import ids, publish, recs
from fastapi.testclient import TestClient

from recsys.publish import rollback
from serving.store import Store

# c1's candidates: v1 -> i1..i10, v2 (offset 10) -> i11..i20
EXPECTED = {"v1": {f"i{k}" for k in range(1, 11)}, "v2": {f"i{k}" for k in range(11, 21)}}


def test_nothing_published_is_a_degraded_answer(client: TestClient) -> None:
    body = recs(client, "c1")
    assert body["degraded"] is True and body["version"] is None and body["items"] == []


def test_switch_and_rollback_never_mix_versions(store: Store, client: TestClient) -> None:
    publish(store, "v1")
    assert set(ids(recs(client, "c1", n=5))) <= EXPECTED["v1"]
    publish(store, "v2", offset=10)
    body = recs(client, "c1", n=5)
    assert body["version"] == "v2" and set(ids(body)) <= EXPECTED["v2"]

    seen: list[tuple[str, set[str]]] = []
    stop = threading.Event()

    def hammer() -> None:
        for _ in range(200):  # bounded
            if stop.is_set():
                return
            b = recs(client, "c1", n=5)
            seen.append((b["version"], set(ids(b))))

    workers = [threading.Thread(target=hammer) for _ in range(3)]
    for w in workers:
        w.start()
    for _ in range(6):  # flip back and forth while requests run
        rollback(store)
    stop.set()
    for w in workers:
        w.join()
    assert seen
    for version, items in seen:
        assert items <= EXPECTED[version], (version, items)

    assert store.active_version() == "v2"  # six rollbacks: back where we were
    assert rollback(store) == "v1"
    body = recs(client, "c1", n=5)
    assert body["version"] == "v1" and set(ids(body)) <= EXPECTED["v1"]


def test_two_processes_worth_of_apps_agree(
    store: Store, make_client: Callable[..., TestClient]
) -> None:
    publish(store, "v1")
    first, second = make_client(), make_client()
    assert recs(first, "c2", n=4) == recs(second, "c2", n=4)
