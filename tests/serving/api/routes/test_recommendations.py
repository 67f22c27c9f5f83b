"""GET /v1/customers/{id}/recommendations against a real Redis."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from api_helpers import ODD_CUSTOMER_IDS, ODD_ITEM_IDS, ids, problems, publish, recs
from fastapi.testclient import TestClient

from serving.store import Store


def test_answers_with_candidates_version_and_reasons(store: Store, client: TestClient) -> None:
    publish(store, "v1")
    body = client.get("/v1/customers/c1/recommendations", params={"n": 5}).json()
    assert body["version"] == "v1" and body["degraded"] is False
    assert body["customer_id"] == "c1" and body["context"] == "home"
    # c1's candidates are i1..i10 best first; at most 3 per category (i1, i4, i7 are Kitchen)
    assert [i["item_id"] for i in body["items"]] == ["i1", "i2", "i3", "i4", "i5"]
    assert {i["reason_code"] for i in body["items"]} == {"for_you"}


def test_unknown_customer_gets_cold_start(store: Store, client: TestClient) -> None:
    publish(store, "v1")
    body = recs(client, "nobody", n=3)
    assert body["degraded"] is False
    assert [(i["item_id"], i["reason"]) for i in body["items"]] == [
        ("i20", "popular"),
        ("i19", "popular"),
        ("i18", "popular"),
    ]


def test_a_view_changes_the_next_answer(store: Store, client: TestClient) -> None:
    publish(store, "v1")
    before = ids(recs(client, "c1", n=5))
    assert (
        client.post(
            "/v1/events", json={"customer_id": "c1", "item_id": "i20", "event_type": "view"}
        ).status_code
        == 202
    )
    after = recs(client, "c1", n=5)
    assert ids(after) != before
    assert after["items"][0]["reason"] == "because you viewed i20"


def test_a_purchase_removes_the_item(store: Store, client: TestClient) -> None:
    publish(store, "v1")
    assert ids(recs(client, "c2", n=1)) == ["i2"]
    event = {"customer_id": "c2", "item_id": "i2", "event_type": "purchase"}
    assert client.post("/v1/events", json=event).status_code == 202
    assert "i2" not in ids(recs(client, "c2", n=10))


def test_cart_context_shows_complements_not_the_cart(store: Store, client: TestClient) -> None:
    publish(store, "v1")
    event = {"customer_id": "c3", "item_id": "i3", "event_type": "add_to_cart"}
    assert client.post("/v1/events", json=event).status_code == 202
    body = recs(client, "c3", n=3, context="cart")
    assert "i3" not in ids(body)
    assert body["items"][0]["reason_code"] == "similar_to_cart"


def test_product_context_and_request_filters(store: Store, client: TestClient) -> None:
    publish(store, "v1")
    body = recs(client, "c1", n=3, context="product", item_id="i3")
    assert "i3" not in ids(body) and body["items"][0]["reason"] == "similar to i3"
    assert ids(recs(client, "c1", n=2, exclude=["i1", "i2"])) == ["i3", "i4"]
    # a comma is part of an id: "i1,i2" is one (unknown) id, nothing is excluded
    assert ids(recs(client, "c1", n=2, exclude="i1,i2")) == ["i1", "i2"]
    assert ids(recs(client, "c1", n=2, category="Books")) == ["i2", "i5"]
    in_range = ids(recs(client, "c1", n=10, price_min=3, price_max=5))  # price = k + 1
    assert set(in_range) <= {"i2", "i3", "i4"} and in_range


def test_bad_input_is_a_4xx_naming_the_problem(store: Store, client: TestClient) -> None:
    publish(store, "v1")
    cases = {
        "?n=1000": (("query", "n"), "n must be between 1 and 100, got 1000"),
        "?n=0": (("query", "n"), "greater than or equal to 1"),
        "?n=abc": (("query", "n"), "valid integer"),
        "?context=checkout": (("query", "context"), "'home', 'product', 'cart' or 'email'"),
        "?context=product": (("query",), "context=product needs item_id"),
        "?price_min=9&price_max=1": (("query",), "price_min (9.0) is above price_max (1.0)"),
        "?price_min=inf": (("query", "price_min"), "finite number"),
        "?price_max=x": (("query", "price_max"), "valid number"),
        "?exclude=i1&exclude=%20a": (("query", "exclude"), "exclude ' a' starts or ends"),
        "?item_id=a%0Ab&context=product": (("query", "item_id"), "item_id 'a\\nb' contains"),
        "?category=" + "x" * 513: (("query", "category"), "at most 512 characters"),
        "?exclude_category=" + ",".join("x" * 51): (("query", "exclude_category"), "at most 50"),
    }
    for query, (where, message) in cases.items():
        found = problems(client.get("/v1/customers/c1/recommendations" + query))
        assert any(loc == where and message in msg for loc, msg in found), (query, found)
    for path, message in {
        "c%091": "customer_id 'c\\t1' contains the control character",
        "c1%20": "customer_id 'c1 ' starts or ends with whitespace",
        "x" * 300: "at most 256",
    }.items():
        found = problems(client.get(f"/v1/customers/{path}/recommendations"))
        assert found[0][0] == ("path", "customer_id") and message in found[0][1], found


@pytest.mark.parametrize("odd_ids", [False, True], ids=["plain-ids", "odd-ids"])
def test_preloaded_and_on_demand_similar_lists_answer_alike(
    store: Store, make_client: Callable[..., TestClient], odd_ids: bool
) -> None:
    """Two apps on the same Redis: one never preloads a version's similar lists (each
    request loads what its seeds need), the other answers once every list is in memory.
    With odd ids: spaces, quotes, braces, commas, non-ASCII, a 256-character id."""
    items = ODD_ITEM_IDS if odd_ids else [f"i{k}" for k in range(30)]
    customers = ODD_CUSTOMER_IDS if odd_ids else [f"c{k}" for k in range(10)]
    publish(store, "v1", item_ids=items, customer_ids=customers)
    general = make_client(similar_cache_items=0)
    fast = make_client()
    service = fast.app.state.service  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while "v1" not in service.versions.preloaded:
        assert time.monotonic() < deadline, "the similar lists were never preloaded"
        recs(fast, "c0")  # loads the version; the similar lists load in the background
        time.sleep(0.05)
    assert "v1" not in general.app.state.service.versions.preloaded  # type: ignore[attr-defined]
    events = [
        {"customer_id": customers[c], "item_id": items[i], "event_type": kind}
        for c, i, kind in [
            (1, 20, "view"),
            (1, 7, "add_to_cart"),
            (2, 2, "purchase"),
            (2, 11, "view"),
            (3, 3, "add_to_cart"),
            (4, 18, "view"),  # the 256-character id, in the activity
        ]
    ]
    assert fast.post("/v1/events", json={"events": events}).status_code == 202
    for customer in (*customers[:5], "nobody"):
        for params in (
            {"n": 5},
            {"n": 3, "context": "cart"},
            {"n": 4, "context": "product", "item_id": items[5]},
            {"n": 6, "exclude": [items[1], items[4]]},
        ):
            a, b = recs(general, customer, **params), recs(fast, customer, **params)
            assert [(i["item_id"], i["reason"]) for i in a["items"]] == [
                (i["item_id"], i["reason"]) for i in b["items"]
            ]
            assert [i["score"] for i in a["items"]] == pytest.approx(
                [i["score"] for i in b["items"]], abs=1e-5
            )
