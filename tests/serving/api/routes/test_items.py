"""GET /v1/items/{id}/similar."""

from __future__ import annotations

from api_helpers import ids, problems, publish
from fastapi.testclient import TestClient

from serving.store import Store


def test_similar_items_with_reason(store: Store, client: TestClient) -> None:
    publish(store, "v1")
    body = client.get("/v1/items/i3/similar", params={"n": 3}).json()
    assert body["version"] == "v1" and body["degraded"] is False and body["item_id"] == "i3"
    assert ids(body) == ["i6", "i9", "i12"]  # the published similar list of i3
    assert body["items"][0]["reason"] == "similar to i3"


def test_customer_filter_drops_what_they_bought(store: Store, client: TestClient) -> None:
    publish(store, "v1")
    event = {"customer_id": "c4", "item_id": "i6", "event_type": "purchase"}
    assert client.post("/v1/events", json=event).status_code == 202
    body = client.get("/v1/items/i3/similar", params={"n": 3, "customer_id": "c4"}).json()
    assert body["customer_id"] == "c4"
    assert "i6" not in ids(body) and ids(body)[0] == "i9"


def test_unknown_item_is_404_with_a_message(store: Store, client: TestClient) -> None:
    publish(store, "v1")
    r = client.get("/v1/items/nope/similar")
    assert r.status_code == 404
    assert "nope" in r.json()["detail"] and "not in the catalog" in r.json()["detail"]


def test_bad_parameters(store: Store, client: TestClient) -> None:
    publish(store, "v1")
    assert problems(client.get("/v1/items/i3/similar?n=0"))[0][0] == ("query", "n")
    r = client.get("/v1/items/i3/similar", params={"customer_id": "a\tb"})
    [(loc, msg)] = problems(r)
    assert loc == ("query", "customer_id") and msg.startswith("customer_id 'a\\tb' contains")
