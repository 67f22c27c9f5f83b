"""POST /v1/email/recommendations: batches, recording, frequency capping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from api_helpers import messages, problems, publish
from fastapi.testclient import TestClient

from serving.store import Store


def email(client: TestClient, **body: Any) -> dict[str, Any]:
    r = client.post("/v1/email/recommendations", json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def lists(body: dict[str, Any]) -> dict[str, list[str]]:
    return {r["customer_id"]: [i["item_id"] for i in r["items"]] for r in body["results"]}


def test_capping_holds_across_two_batches(store: Store, client: TestClient) -> None:
    publish(store, "v1")
    first = email(client, customer_ids=["c1", "c2"], n=3, record=True)
    assert first["version"] == "v1" and first["recorded"] is True
    second = email(client, customer_ids=["c1", "c2"], n=3, record=True)
    for cid in ("c1", "c2"):
        assert lists(first)[cid] and lists(second)[cid]
        assert not set(lists(first)[cid]) & set(lists(second)[cid]), cid
    # not recorded: the same list again
    third = email(client, customer_ids=["c1"], n=3)
    assert third["recorded"] is False
    assert lists(email(client, customer_ids=["c1"], n=3)) == lists(third)
    # the storefront is not capped
    r = client.get("/v1/customers/c1/recommendations", params={"n": 1}).json()
    assert r["items"][0]["item_id"] == lists(first)["c1"][0]


def test_a_purchase_is_not_emailed(store: Store, client: TestClient) -> None:
    publish(store, "v1")
    top = lists(email(client, customer_ids=["c5"], n=1))["c5"][0]
    event = {"customer_id": "c5", "item_id": top, "event_type": "purchase"}
    assert client.post("/v1/events", json=event).status_code == 202
    assert top not in lists(email(client, customer_ids=["c5"], n=10))["c5"]


def test_limits(store: Store, make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_email_customers=2)
    r = client.post("/v1/email/recommendations", json={"customer_ids": ["a", "b", "c"]})
    assert r.status_code == 413 and "at most 2" in r.json()["detail"]
    r = client.post("/v1/email/recommendations", json={"customer_ids": ["a"], "n": 101})
    assert problems(r) == [(("body", "n"), "n must be between 1 and 100, got 101")]
    r = client.post("/v1/email/recommendations", json={"customer_ids": []})
    assert problems(r)[0][0] == ("body", "customer_ids")
    r = client.post("/v1/email/recommendations", json={"customer_ids": ["bad\tid"]})
    assert "control character" in messages(r)
    r = client.post("/v1/email/recommendations", json={"customer_ids": ["c1", " padded"]})
    assert "whitespace" in messages(r)
