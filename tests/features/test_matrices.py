"""build_matrices: CSR + stable id maps, save/load round trip, item/customer feature matrices."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from features.idmap import IdMap
from features.interactions import InteractionConfig
from features.matrices import (
    Matrices,
    build_matrices,
    customer_feature_matrix,
    item_feature_matrix,
)
from features.schema import EVENT_SCHEMA

T0 = datetime(2024, 3, 1, tzinfo=UTC)
LINEAR = InteractionConfig(confidence="linear")


def events(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    n = len(rows)
    return pl.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "event_type": [r[2] for r in rows],
            "timestamp": [T0 + timedelta(hours=k) for k in range(n)],
            "quantity": [1.0] * n,
            "price": [None] * n,
            "channel": ["web"] * n,
            "session_id": [None] * n,
            "value": [None] * n,
        },
        schema=EVENT_SCHEMA,
    )


EVENTS = events(
    [
        ("c2", "i1", "view"),
        ("c2", "i1", "purchase"),
        ("c1", "i3", "add_to_cart"),
        ("c1", "i1", "view"),
        ("c3", "i2", "view"),
    ]
)


def cell(m: Matrices, customer: str, item: str) -> float:
    r = m.customers.index_of([customer])[0]
    c = m.items.index_of([item])[0]
    return float(m.interactions[r, c])


def test_build_matrix_values_and_sorted_maps() -> None:
    m = build_matrices(EVENTS, LINEAR)
    assert m.interactions.dtype == np.float32
    assert m.shape == (3, 3)
    assert list(m.customers.ids) == ["c1", "c2", "c3"]
    assert list(m.items.ids) == ["i1", "i2", "i3"]
    assert cell(m, "c2", "i1") == 6.0
    assert cell(m, "c1", "i3") == 3.0
    assert cell(m, "c1", "i1") == 1.0
    assert cell(m, "c3", "i2") == 1.0
    assert m.interactions.nnz == 4
    assert m.interactions.has_sorted_indices


def test_given_maps_keep_known_indices_and_append_new_ids() -> None:
    first = build_matrices(EVENTS, LINEAR)
    later = events([("c9", "i1", "view"), ("c3", "i7", "purchase"), ("c1", "i3", "view")])
    second = build_matrices(later, LINEAR, customers=first.customers, items=first.items)
    assert list(second.customers.ids) == ["c1", "c2", "c3", "c9"]
    assert list(second.items.ids) == ["i1", "i2", "i3", "i7"]
    assert cell(second, "c3", "i7") == 5.0
    assert second.meta["dropped_unknown"] == 0
    frozen = build_matrices(
        later, LINEAR, customers=first.customers, items=first.items, extend=False
    )
    assert frozen.customers == first.customers and frozen.items == first.items
    assert frozen.interactions.nnz == 1  # only c1-i3 maps onto the old ids
    assert frozen.meta["dropped_unknown"] == 2


def test_save_load_round_trip(tmp_path: Path) -> None:
    catalog = pl.DataFrame({"item_id": ["i1", "i2", "i3"], "category": ["A", "A > B", None]})
    attrs = pl.DataFrame({"customer_id": ["c1", "c2"], "tier": ["gold", "silver"]})
    cfg = InteractionConfig(half_life_days=14, min_item_support=1)
    m = build_matrices(EVENTS, cfg, catalog=catalog, customer_attrs=attrs)
    m.save(tmp_path / "mx")
    meta = json.loads((tmp_path / "mx" / "meta.json").read_text())
    assert meta["nnz"] == 4 and meta["customers"] == 3 and meta["items"] == 3
    assert meta["config"]["half_life_days"] == 14
    assert meta["items_fingerprint"] == m.items.fingerprint()
    loaded = Matrices.load(tmp_path / "mx")
    assert loaded.customers == m.customers and loaded.items == m.items
    assert (loaded.interactions != m.interactions).nnz == 0
    assert loaded.interactions.dtype == np.float32
    assert loaded.config == m.config
    assert loaded.item_feature_names == m.item_feature_names
    assert loaded.item_features is not None and m.item_features is not None
    assert (loaded.item_features != m.item_features).nnz == 0
    assert loaded.customer_feature_names == m.customer_feature_names


def test_load_detects_a_swapped_id_map(tmp_path: Path) -> None:
    m = build_matrices(EVENTS, LINEAR)
    m.save(tmp_path / "mx")
    IdMap.from_ids(["i3", "i2", "i1"]).save(tmp_path / "mx" / "items.parquet")
    with pytest.raises(ValueError, match="items id map"):
        Matrices.load(tmp_path / "mx")
    with pytest.raises(FileNotFoundError):
        Matrices.load(tmp_path / "nothing")


def test_item_feature_matrix_levels_price_attributes_identity() -> None:
    catalog = pl.DataFrame(
        {
            "item_id": ["i1", "i2", "i3", "i4", "zz"],
            "title": ["a", "b", "c", "d", "e"],
            "category": ["Home > Kitchen > Pans", "Home > Garden", "Toys", None, "Toys"],
            "price": [1.0, 2.0, 3.0, 4.0, 5.0],
            "brand": ["acme", None, "acme", "zeta", "x"],
        }
    )
    items = IdMap.from_ids(["i1", "i2", "i3", "i4", "i5"])  # i5 is not in the catalog
    matrix, names = item_feature_matrix(catalog, items, price_buckets=2)
    assert names[:5] == ["item=i1", "item=i2", "item=i3", "item=i4", "item=i5"]
    dense = matrix.toarray()
    assert dense.shape == (5, len(names))

    def feats(row: int) -> set[str]:
        return {names[j] for j in np.flatnonzero(dense[row])}

    assert feats(0) == {
        "item=i1",
        "category:L1=Home",
        "category:L2=Home > Kitchen",
        "category:L3=Home > Kitchen > Pans",
        "price:q0",
        "brand=acme",
    }
    assert feats(1) == {"item=i2", "category:L1=Home", "category:L2=Home > Garden", "price:q0"}
    assert feats(3) == {"item=i4", "price:q1", "brand=zeta"}
    assert feats(4) == {"item=i5"}
    assert "brand=x" not in names  # items outside the map do not add features
    bare, bare_names = item_feature_matrix(catalog, items, identity=False, price_buckets=0)
    assert not any(n.startswith(("item=", "price:")) for n in bare_names)
    assert bare[4].nnz == 0


def test_customer_feature_matrix() -> None:
    attrs = pl.DataFrame(
        {"customer_id": ["c1", "c2", "c1"], "tier": ["gold", "", "x"], "age": [30, 40, 50]}
    )
    customers = IdMap.from_ids(["c2", "c1", "c3"])
    matrix, names = customer_feature_matrix(attrs, customers)
    assert names == ["age=30", "age=40", "tier=gold"]
    dense = matrix.toarray()
    assert dense.tolist() == [[0, 1, 0], [1, 0, 1], [0, 0, 0]]  # first row per id wins
    with_id, id_names = customer_feature_matrix(attrs, customers, identity=True)
    assert id_names[:3] == ["customer=c2", "customer=c1", "customer=c3"]
    assert with_id.shape == (3, 6)


def test_catalog_items_adds_cold_items() -> None:
    catalog = pl.DataFrame({"item_id": ["i9", "i1", "i2", "i3"], "category": ["A"] * 4})
    m = build_matrices(EVENTS, LINEAR, catalog=catalog, catalog_items=True)
    assert list(m.items.ids) == ["i1", "i2", "i3", "i9"]
    assert m.interactions[:, 3].nnz == 0
    assert m.item_features is not None and m.item_features.shape[0] == 4
