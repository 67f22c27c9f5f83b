"""Any id the rule allows (features.ids) goes through the API unchanged: percent-encoded in
paths (``/``, ``%``, ``?``, ``#``, spaces, non-ASCII), in query strings (decoded like
``urllib.parse.parse_qsl``), as a repeated ``exclude``, in JSON bodies, in Redis keys
(one cluster slot per customer) and in the events export."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode

import httpx
import polars as pl
import pytest
import redis.crc
from api_helpers import ODD_CUSTOMER_IDS, ODD_ITEM_IDS, ids, problems, publish, recs
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from id_strategies import invalid_ids
from starlette.datastructures import QueryParams

from features.ids import check_id
from recsys.publish import export_events
from serving.api.params import rerank_request
from serving.api.routes import recommendations
from serving.api.routing import QueryPlan
from serving.rerank import RerankRequest
from serving.settings import Settings
from serving.store import Store


def path_id(value: str) -> str:
    return quote(value, safe="")


def test_any_customer_id_in_the_path(store: Store, live_client: httpx.Client) -> None:
    publish(store, "v1", item_ids=ODD_ITEM_IDS, customer_ids=ODD_CUSTOMER_IDS)
    for k, customer in enumerate(ODD_CUSTOMER_IDS):
        r = live_client.get(f"/v1/customers/{path_id(customer)}/recommendations?n=3")
        assert r.status_code == 200, (customer, r.text)
        body = r.json()
        assert body["customer_id"] == customer and body["degraded"] is False
        # the customer's own candidates (items k..k+9), not a cold start
        assert {i["reason_code"] for i in body["items"]} == {"for_you"}, customer
        assert set(ids(body)) <= {ODD_ITEM_IDS[(k + j) % 29] for j in range(10)}


def test_any_item_id_in_the_path(store: Store, live_client: httpx.Client) -> None:
    publish(store, "v1", item_ids=ODD_ITEM_IDS, customer_ids=ODD_CUSTOMER_IDS)
    for j, item in enumerate(ODD_ITEM_IDS[:27]):
        r = live_client.get(f"/v1/items/{path_id(item)}/similar?n=3")
        assert r.status_code == 200, (item, r.text)
        body = r.json()
        assert body["item_id"] == item
        # the published similar list of item j: items (j + 3s) % 27
        assert ids(body) == [ODD_ITEM_IDS[(j + 3 * s) % 27] for s in range(1, 4)]
        assert body["items"][0]["reason"] == f"similar to {item}"
    r = live_client.get(f"/v1/items/{path_id('rolls/buns/similar')}/similar")
    assert r.status_code == 404 and "'rolls/buns/similar'" in r.json()["detail"]
    [(loc, msg)] = problems(live_client.get("/v1/items/a%09b/similar"))
    assert loc == ("path", "item_id") and "control character" in msg


def read(raw: str) -> RerankRequest:
    """The re-ranking request of a query string, read as the recommendations route does."""
    [route] = recommendations.router.routes
    assert isinstance(route, APIRoute)
    query, errors = QueryPlan.of(route.dependant.query_params[0]).read(QueryParams(raw))
    assert not errors, errors
    return rerank_request(query, Settings())


def test_query_strings_are_decoded_like_parse_qsl() -> None:
    raw = "context=product&item_id=rolls%2Fbuns&exclude=a+b&exclude=a%2Bb&exclude=sku%2C1"
    raw += "&exclude=&exclude=%E5%95%86%E5%93%81123&exclude=100%25"
    req = read(raw)
    decoded = parse_qsl(raw, keep_blank_values=True)
    assert req.item_id == "rolls/buns" == dict(decoded)["item_id"]
    assert req.exclude == ("a b", "a+b", "sku,1", "商品123", "100%")
    assert req.exclude == tuple(v for k, v in decoded if k == "exclude" and v)
    every = urlencode([("exclude", i) for i in ODD_ITEM_IDS[:25]])
    assert read(every).exclude == ODD_ITEM_IDS[:25]


def test_exclude_is_a_repeated_parameter(store: Store, client: TestClient) -> None:
    publish(store, "v1", item_ids=ODD_ITEM_IDS, customer_ids=ODD_CUSTOMER_IDS)
    url = f"/v1/customers/{path_id(ODD_CUSTOMER_IDS[8])}/recommendations?n=9"
    before = ids(client.get(url).json())
    assert {"a+b", "sku,1"} <= set(before)
    after = ids(client.get(url + "&exclude=a%2Bb&exclude=sku%2C1").json())
    assert "a+b" not in after and "sku,1" not in after
    # "+" in a query string is a space: this excludes "a b", not "a+b"
    assert "a+b" in ids(client.get(url + "&exclude=a+b").json())
    [(loc, msg)] = problems(client.get(url + "&exclude=sku%2C1&exclude=%20padded"))
    assert loc == ("query", "exclude") and msg.startswith("exclude ' padded' starts")
    body = recs(client, ODD_CUSTOMER_IDS[0], n=3, context="product", item_id="rolls/buns")
    assert "rolls/buns" not in ids(body) and body["items"][0]["reason"] == "similar to rolls/buns"


def test_openapi_describes_the_id_parameters(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    params = {
        p["name"]: p
        for p in paths["/v1/customers/{customer_id}/recommendations"]["get"]["parameters"]
    }
    exclude = params["exclude"]
    # a repeated parameter: OpenAPI's default for a query array (style form, explode true)
    assert exclude.get("style", "form") == "form" and exclude.get("explode", True) is True
    assert exclude["in"] == "query" and exclude["schema"]["type"] == "array"
    assert exclude["schema"]["items"] == {"type": "string", "minLength": 1, "maxLength": 256}
    assert (
        params["customer_id"]["in"] == "path"
        and "percent-encoded" in (params["customer_id"]["description"])
    )
    similar = paths["/v1/items/{item_id}/similar"]["get"]["parameters"]
    assert any(p["name"] == "item_id" and p["in"] == "path" for p in similar)
    event = client.get("/openapi.json").json()["components"]["schemas"]["EventIn"]
    assert event["properties"]["item_id"]["maxLength"] == 256


@pytest.mark.parametrize("customer", [*ODD_CUSTOMER_IDS, "{", "}", "{}", "a{b}c", "}{c:x}"])
def test_a_customers_keys_share_one_cluster_slot(store: Store, customer: str) -> None:
    keys = list(store.keys.customer("v1", customer))
    k = store.keys
    assert keys == [k.candidates("v1", customer), k.recent(customer), k.cart(customer)] + [
        k.bought(customer),
        k.mailed(customer),
    ]
    assert len({redis.crc.key_slot(k.encode()) for k in keys}) == 1, keys


def test_json_bodies_and_the_events_export_keep_ids(
    store: Store, client: TestClient, tmp_path: Path
) -> None:
    publish(store, "v1", item_ids=ODD_ITEM_IDS, customer_ids=ODD_CUSTOMER_IDS)
    pairs = list(zip(ODD_CUSTOMER_IDS, ODD_ITEM_IDS, strict=False))
    events = [{"customer_id": c, "item_id": i, "event_type": "add_to_cart"} for c, i in pairs]
    r = client.post("/v1/events", json={"events": events})
    assert r.status_code == 202, r.text
    for customer, item in pairs:
        assert store.customer_view("v1", customer).state.cart == (item,)
    r = client.post(
        "/v1/email/recommendations",
        json={"customer_ids": list(ODD_CUSTOMER_IDS), "n": 3, "exclude": ["sku,1", "a+b"]},
    )
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["customer_id"] for x in results] == list(ODD_CUSTOMER_IDS)
    assert all({i["item_id"] for i in x["items"]} <= set(ODD_ITEM_IDS) for x in results)
    assert not any({"sku,1", "a+b"} & {i["item_id"] for i in x["items"]} for x in results)

    report = export_events(store, tmp_path)
    exported = pl.read_parquet(report.paths)
    assert exported.select("customer_id", "item_id").rows() == pairs


@given(bad=invalid_ids)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_an_invalid_id_is_a_422_with_the_rules_message(bad: str, client: TestClient) -> None:
    """Empty, too long, padded or holding a control character: a JSON body, a query
    parameter and an exclude list all answer 422 with the message of features.ids."""
    with pytest.raises(ValueError) as error:
        check_id(bad, "item_id")
    message = str(error.value)
    event = {"customer_id": "c1", "item_id": bad, "event_type": "view"}
    r = client.post("/v1/events", json=event)
    assert r.status_code == 422
    # (the body is one event or a batch: the error of the one-event reading names item_id)
    errors = [(loc[-1], msg) for loc, msg in problems(r)]
    assert ("item_id", message) in errors, errors
    r = client.get(
        "/v1/customers/c1/recommendations", params={"item_id": bad, "context": "product"}
    )
    assert problems(r) == [(("query", "item_id"), message)]
    if bad:  # (an empty exclude value is skipped)
        r = client.get("/v1/customers/c1/recommendations", params={"exclude": ["i1", bad]})
        assert problems(r) == [(("query", "exclude"), message.replace("item_id", "exclude", 1))]
