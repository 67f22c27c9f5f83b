"""Every real answer of every route matches the model its route declares (the OpenAPI).

The routes write their JSON themselves (the storefront's compiled path writes the items
as bytes), so FastAPI does not apply ``response_model``: this test is what keeps the
declared models and the answers the same. Each answer is validated with the model the
route declares for its status code (``response_model``, ``responses[status]["model"]``)
and must come back unchanged from the model (no undeclared field, nothing coerced);
every declared status model must be met at least once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from api_helpers import publish
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel
from starlette.routing import Match

from serving.store import Store


class Checker:
    """Validates answers against the declared models and remembers which it met."""

    def __init__(self, app: FastAPI) -> None:
        self.routes = [r for r in app.routes if isinstance(r, APIRoute)]
        self.met: set[tuple[str, str, int]] = set()

    def declared(self) -> set[tuple[str, str, int]]:
        """(method, path, status) of every declared JSON model."""
        out = set()
        for route in self.routes:
            method = next(iter(route.methods))
            if route.response_model is not None:
                out.add((method, route.path_format, route.status_code or 200))
            for status, response in route.responses.items():
                if "model" in response:
                    out.add((method, route.path_format, int(status)))
        return out

    def model(self, method: str, path: str, status: int) -> tuple[APIRoute, type[BaseModel]]:
        scope = {"type": "http", "method": method, "path": path}
        for route in self.routes:
            if route.matches(scope)[0] is Match.FULL:
                if status == (route.status_code or 200):
                    assert route.response_model is not None, route.path
                    return route, route.response_model
                declared = route.responses.get(status) or route.responses.get(str(status))
                assert declared and "model" in declared, (route.path, status, "not declared")
                return route, declared["model"]
        raise AssertionError(f"no route for {method} {path}")

    def __call__(self, r: httpx.Response) -> dict[str, Any]:
        route, model = self.model(r.request.method, r.request.url.path, r.status_code)
        body = r.json()
        parsed = model.model_validate_json(r.content, strict=True)
        assert parsed.model_dump(mode="json", exclude_unset=True) == body, (model, body)
        self.met.add((r.request.method, route.path_format, r.status_code))
        return body


def test_every_answer_matches_its_declared_model(
    store: Store, make_client: Callable[..., TestClient]
) -> None:
    client = make_client()
    check = Checker(client.app)  # type: ignore[arg-type]
    recs = "/v1/customers/{}/recommendations"

    # nothing published: degraded answers without a local copy
    empty = check(client.get(recs.format("c1")))
    assert empty["degraded"] is True and empty["items"] == []
    check(client.get("/readyz"))  # 503
    check(client.post("/v1/email/recommendations", json={"customer_ids": ["c1"]}))

    publish(store, "v1")
    events = [
        {"customer_id": "c1", "item_id": "i4", "event_type": "view"},
        {"customer_id": "c2", "item_id": "i7", "event_type": "add_to_cart"},
        {"customer_id": "nobody", "item_id": "i5", "event_type": "view"},
    ]
    assert check(client.post("/v1/events", json={"events": events}))["accepted"] == 3
    check(client.post("/v1/events", json=events[0]))
    service = client.app.state.service  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while "v1" not in service.versions.preloaded:  # with every similar list in memory too
        assert time.monotonic() < deadline, "the similar lists were never preloaded"
        check(client.get(recs.format("c1")))
        time.sleep(0.05)
    for customer in ("c1", "c2", "nobody", "never-seen"):  # known, cart, cold starts
        for params in (
            {},
            {"context": "cart", "n": 3},
            {"context": "product", "item_id": "i3"},
            {"context": "email"},
            {"category": "Books", "n": 2},
            {"exclude": ["i1", "i2"], "exclude_category": "Home > Garden"},
            {"price_min": 3, "price_max": 9},
        ):
            body = check(client.get(recs.format(customer), params=params))
            assert body["degraded"] is False and body["items"], (customer, params)
    check(client.get("/v1/items/i3/similar", params={"n": 3}))
    check(client.get("/v1/items/i3/similar", params={"customer_id": "c2"}))
    check(client.get("/v1/items/nope/similar"))  # 404
    email = {"customer_ids": ["c1", "c2", "nobody"], "n": 3, "record": True}
    assert check(client.post("/v1/email/recommendations", json=email))["recorded"] is True
    check(client.get("/healthz"))
    check(client.get("/readyz"))  # 200

    # every source of a 422: FastAPI's own checks, the id rule, a settings limit, a model rule
    for r in (
        client.get(recs.format("c1"), params={"n": "x"}),
        client.get(recs.format("c%091")),
        client.get(recs.format("c1"), params={"n": 1000}),
        client.get(recs.format("c1"), params={"context": "product"}),
        client.get("/v1/items/i3/similar", params={"customer_id": " c"}),
        client.post("/v1/events", json={"customer_id": "c1"}),
        client.post("/v1/email/recommendations", json={"customer_ids": ["c1"], "n": 1000}),
    ):
        check(r)
    limited = make_client(max_email_customers=1, max_events_per_batch=1)
    check(limited.post("/v1/email/recommendations", json={"customer_ids": ["a", "b"]}))  # 413
    check(limited.post("/v1/events", json={"events": events}))  # 413

    # Redis unreachable: degraded answers from the local copy the first app saved
    down = make_client("redis://127.0.0.1:1/0", redis_timeout_s=0.2)
    for params in ({}, {"category": "Books"}, {"context": "cart"}):
        body = check(down.get(recs.format("c1"), params=params))
        assert body["degraded"] is True and body["version"] == "v1" and body["items"]
    assert check(down.get("/v1/items/i3/similar"))["degraded"] is True
    assert check(down.post("/v1/email/recommendations", json={"customer_ids": ["c1"]}))["degraded"]
    check(down.post("/v1/events", json=events[0]))  # 503

    missing = check.declared() - check.met
    assert not missing, f"declared answers never checked: {sorted(missing)}"
