"""POST /v1/events: single, batch, malformed, oversize."""

from __future__ import annotations

from collections.abc import Callable

from api_helpers import problems, publish
from fastapi.testclient import TestClient

from serving.store import Store


def test_single_and_batch_reach_state_and_stream(store: Store, client: TestClient) -> None:
    publish(store, "v1")
    one = {"customer_id": "c1", "item_id": "i5", "event_type": "view", "ts": 1.7e9}
    assert client.post("/v1/events", json=one).json() == {"accepted": 1}
    batch = {
        "events": [
            {"customer_id": "c1", "item_id": "i6", "event_type": "add_to_cart"},
            {
                "customer_id": "c1",
                "item_id": "i7",
                "event_type": "purchase",
                "ts": "2025-01-01T12:00:00Z",
                "quantity": 2,
                "price": 9.5,
            },
        ]
    }
    r = client.post("/v1/events", json=batch)
    assert r.status_code == 202 and r.json() == {"accepted": 2}
    view = store.customer_view("v1", "c1")
    assert [a.item_id for a in view.state.recent] == ["i7", "i6", "i5"]
    assert view.state.cart == ("i6",)
    assert view.state.purchased == {"i7": 1735732800.0}
    assert [e.item_id for _, e in store.read_stream(after="0-0")] == ["i5", "i6", "i7"]


def test_malformed_events_are_422_naming_the_field(store: Store, client: TestClient) -> None:
    cases = [
        ({"item_id": "i1", "event_type": "view"}, "customer_id"),
        ({"customer_id": "c1", "item_id": "i1", "event_type": "like"}, "event_type"),
        ({"customer_id": "c\n1", "item_id": "i1", "event_type": "view"}, "customer_id"),
        ({"customer_id": "c1 ", "item_id": "i1", "event_type": "view"}, "customer_id"),
        ({"customer_id": "c1", "item_id": "", "event_type": "view"}, "item_id"),
        ({"customer_id": "c1", "item_id": "i" * 257, "event_type": "view"}, "item_id"),
        ({"customer_id": "c1", "item_id": "i1", "event_type": "view", "ts": "soon"}, "ts"),
        ({"customer_id": "c1", "item_id": "i1", "event_type": "view", "ts": 1e300}, "ts"),
        ({"customer_id": "c1", "item_id": "i1", "event_type": "view", "ts": -5}, "ts"),
        ({"customer_id": "c1", "item_id": "i1", "event_type": "view", "ts": 631151999}, "ts"),
        (
            {"customer_id": "c1", "item_id": "i1", "event_type": "view", "ts": "3000-01-01T00:00Z"},
            "ts",
        ),
        ({"customer_id": "c1", "item_id": "i1", "event_type": "view", "x": 1}, "x"),
        ({"events": []}, "events"),
    ]
    for event, field in cases:
        found = problems(client.post("/v1/events", json=event))  # (the one 422 shape)
        assert any(field in loc for loc, _ in found), (event, found)
    assert problems(client.post("/v1/events", content=b"{not json"))
    for field in ("ts", "price"):  # infinite numbers (not expressible with json=)
        raw = b'{"customer_id": "c1", "item_id": "i1", "event_type": "view", "%s": 1e999}'
        r = client.post(
            "/v1/events", content=raw % field.encode(), headers={"content-type": "application/json"}
        )
        assert any(field in loc for loc, _ in problems(r)), r.text
    assert store.read_stream(after="0-0") == []  # nothing half-written


def test_oversize_batch_is_413(make_client: Callable[..., TestClient], store: Store) -> None:
    client = make_client(max_events_per_batch=2)
    event = {"customer_id": "c1", "item_id": "i1", "event_type": "view"}
    r = client.post("/v1/events", json={"events": [event] * 3})
    assert r.status_code == 413 and "at most 2" in r.json()["detail"]
    assert store.read_stream(after="0-0") == []
