"""Helpers shared by the API tests: a small catalog published through the real write path,
and request shortcuts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import numpy as np
from fastapi.testclient import TestClient

from recsys.publish import PublishReport, write_version
from serving.store import Store
from serving.types import Candidates, ItemTable

N_ITEMS = 30
CATEGORIES = ("Home > Kitchen", "Home > Garden", "Books")
CUSTOMERS = np.array([f"c{k}" for k in range(10)], dtype=object)


def catalog(version: str, item_ids: Sequence[str] | None = None) -> ItemTable:
    """30 items "i0".."i29" (or ``item_ids``); category = k % 3; i29 out of stock;
    price = k + 1."""
    names = list(item_ids) if item_ids is not None else [f"i{k}" for k in range(N_ITEMS)]
    assert len(names) == N_ITEMS
    return ItemTable(
        version=version,
        item_ids=np.array(names, dtype=object),
        category=np.array([k % 3 for k in range(N_ITEMS)], dtype=np.int32),
        categories=CATEGORIES,
        price=np.arange(1, N_ITEMS + 1, dtype=np.float32),
        in_stock=np.array([k != 29 for k in range(N_ITEMS)]),
        created_at=np.full(N_ITEMS, 1.0e9),
        repeatable=np.zeros(N_ITEMS, dtype=bool),
    )


def candidates_of(version_offset: int) -> np.ndarray:
    """Customer c<k> gets items (k + offset + j) % 29 for j in 0..9, best first."""
    k = np.arange(len(CUSTOMERS))[:, None]
    j = np.arange(10)[None, :]
    return ((k + version_offset + j) % 29).astype(np.int32)


def publish(
    store: Store,
    version: str,
    offset: int = 0,
    activate: bool = True,
    *,
    item_ids: Sequence[str] | None = None,
    customer_ids: Sequence[str] | None = None,
) -> PublishReport:
    """Publish a version through the real write path (H5's ``write_version``).

    ``offset`` shifts every customer's candidates, so two versions give different answers.
    ``item_ids`` / ``customer_ids`` (30 / 10 ids) replace the names "i<k>" / "c<k>".
    """
    table = catalog(version, item_ids)
    customers = CUSTOMERS if customer_ids is None else np.array(customer_ids, dtype=object)
    assert len(customers) == len(CUSTOMERS)
    items = candidates_of(offset)
    scores = np.tile(np.linspace(1.0, 0.1, items.shape[1], dtype=np.float32), (len(items), 1))
    rows = np.arange(len(CUSTOMERS))
    # similar items of item j: the next 5 items of the same category
    sim = np.array([[(j + 3 * s) % 27 for s in range(1, 6)] for j in range(N_ITEMS)], np.int32)
    sim_scores = np.tile(np.linspace(0.9, 0.5, 5, dtype=np.float32), (N_ITEMS, 1))
    name = store.list_name
    lists = {
        name("popular", None): Candidates(
            np.arange(20, 10, -1, dtype=np.int32), np.linspace(10, 1, 10, dtype=np.float32)
        ),
        name("trending", None): Candidates(
            np.array([5, 6, 7], np.int32), np.array([3, 2, 1], np.float32)
        ),
    }
    for code in range(len(CATEGORIES)):
        members = np.arange(code, N_ITEMS - 1, 3, dtype=np.int32)[::-1][:5]
        lists[name("trending", code)] = Candidates(members, np.arange(5, 0, -1, dtype=np.float32))
    return write_version(
        store,
        version,
        table,
        customers,
        [(rows, items, scores)],
        similar=[(np.arange(N_ITEMS), sim, sim_scores)],
        lists=lists,
        activate=activate,
    )


def recs(client: TestClient, customer: str, **params: Any) -> dict[str, Any]:
    r = client.get(f"/v1/customers/{quote(customer, safe='')}/recommendations", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def problems(r: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """(loc, msg) of each problem of a 422 answer, after checking the body's one shape
    (``serving.api.errors``): ``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``."""
    assert r.status_code == 422, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], list) and body["detail"], body
    for problem in body["detail"]:
        assert set(problem) == {"loc", "msg", "type"}, problem
        assert isinstance(problem["loc"], list) and problem["loc"], problem
        assert problem["loc"][0] in {"query", "path", "body"}, problem
        assert isinstance(problem["msg"], str) and isinstance(problem["type"], str), problem
    return [(tuple(p["loc"]), p["msg"]) for p in body["detail"]]


def messages(r: Any) -> str:
    """Every message of a 422 answer (its shape checked), one a line."""
    return "\n".join(msg for _, msg in problems(r))


def ids(body: dict[str, Any]) -> list[str]:
    return [i["item_id"] for i in body["items"]]


ODD_ITEM_IDS = (
    "rolls/buns",
    "a%2Fb",
    "100%",
    "why?",
    "#1",
    "tropical fruit",
    "商品123",
    "{c:42}",
    "sku,1",
    'say "cheese"',
    "a+b",
    "a b",
    "liquor (appetizer)",
    "Größe-42",
    "😀",
    "}{",
    "it's",
    "a&b=c",
    "x" * 255 + "é",
    "007",
    "7",
    *(f"i{k}" for k in range(21, N_ITEMS)),
)
"""30 item ids the id rule allows (features.ids) that paths, query strings, CSV, JSON and
hash tags must carry unchanged."""
ODD_CUSTOMER_IDS = (
    "Visitor 0",
    "c/1",
    "100%",
    "why?",
    "#c",
    "商品 客户",
    "{c:7}",
    "a}b",
    "c,1",
    'q"c',
)
