"""recsys.candidates: item table, category lists, popular/trending, per-customer candidates."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from features.idmap import IdMap
from features.schema import EVENT_SCHEMA
from recsys.candidates import (
    build_item_table,
    category_matrix,
    consumed_matrix,
    customer_candidates,
    decayed_interactions,
    ranked_lists,
    similar_candidates,
)
from recsys.models import build

ITEMS = IdMap([f"i{j}" for j in range(6)])
CUSTOMERS = IdMap([f"c{j}" for j in range(5)])


def catalog() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "item_id": ["i0", "i1", "i2", "i3", "i4", "zz"],  # i5 missing, zz unknown
            "category": ["Home > Mugs", "Home > Mugs", "Home > Lamps", "Food", "Food", "Food"],
            "price": [5.0, None, 30.0, 2.5, 3.0, 1.0],
            "in_stock": [True, False, True, True, None, True],
            "created_at": [datetime(2024, 1, 1, tzinfo=UTC)] * 6,
        }
    )


def history() -> sp.csr_matrix:
    dense = np.array(
        [
            [1, 1, 0, 0, 0, 0],
            [1, 0, 1, 0, 0, 0],
            [0, 1, 1, 1, 0, 0],
            [1, 0, 0, 1, 1, 0],
            [1, 1, 0, 0, 0, 1],
        ],
        dtype=np.float32,
    )
    return sp.csr_matrix(dense)


def test_item_table_follows_the_model_item_order() -> None:
    table = build_item_table("1", ITEMS, catalog(), repeatable_categories=("Food",))
    assert table.item_ids.tolist() == ITEMS.ids.tolist() and table.index["i4"] == 4
    assert table.categories == ("Food", "Home", "Home > Lamps", "Home > Mugs")
    assert [table.categories[c] if c >= 0 else None for c in table.category] == [
        "Home > Mugs", "Home > Mugs", "Home > Lamps", "Food", "Food", None
    ]  # fmt: skip
    assert table.price[0] == 5.0 and np.isnan(table.price[1]) and np.isnan(table.price[5])
    assert table.in_stock.tolist() == [True, False, True, True, True, True]
    assert table.created_at[0] == datetime(2024, 1, 1, tzinfo=UTC).timestamp()
    assert np.isnan(table.created_at[5])
    assert table.repeatable.tolist() == [False, False, False, True, True, False]


def test_item_table_without_catalog_and_from_string_columns() -> None:
    bare = build_item_table("1", ITEMS)
    assert bare.categories == () and (bare.category == -1).all() and bare.in_stock.all()
    strings = (
        catalog()
        .with_columns(pl.col("in_stock").cast(pl.String), pl.col("created_at").cast(pl.String))
        .with_columns(repeatable=pl.Series(["yes", "no", "", "0", "true", "1"]))
    )
    table = build_item_table("1", ITEMS, strings)
    assert table.in_stock.tolist() == [True, False, True, True, True, True]
    assert table.repeatable.tolist() == [True, False, False, False, True, False]
    assert table.created_at[1] == datetime(2024, 1, 1, tzinfo=UTC).timestamp()


def test_category_matrix_counts_parent_paths() -> None:
    table = build_item_table("1", ITEMS, catalog())
    m = category_matrix(table).toarray()
    assert m[:, 0].tolist() == [1] * 6  # global column
    home = 1 + table.categories.index("Home")
    assert m[:, home].tolist() == [1, 1, 1, 0, 0, 0]
    assert m[5, 1:].sum() == 0


def test_popular_and_trending_lists() -> None:
    table = build_item_table("1", ITEMS, catalog())
    lists = ranked_lists(table, history(), n=3)
    # distinct customers per item: i0 4, i1 3, i2 2, i3 2, i4 1, i5 1
    assert lists["popular"].items.tolist() == [0, 1, 2]
    food = table.categories.index("Food")
    assert lists[f"popular:{food}"].items.tolist() == [3, 4]
    home = table.categories.index("Home")
    assert set(lists[f"popular:{home}"].items.tolist()) <= {0, 1, 2}
    assert lists["trending"].items.tolist()[0] == 0  # no recent events: weights of history

    t_new, t_old = datetime(2024, 3, 1, tzinfo=UTC), datetime(2023, 3, 1, tzinfo=UTC)
    events = pl.DataFrame(
        {
            "customer_id": ["c0", "c1", "c2", "c3"],
            "item_id": ["i5", "i5", "i0", "i0"],
            "event_type": ["view"] * 4,
            "timestamp": [t_new, t_new, t_old, t_old],
        }
    ).with_columns(
        *[pl.lit(None, dtype=EVENT_SCHEMA[c]).alias(c) for c in EVENT_SCHEMA if c not in
          ("customer_id", "item_id", "event_type", "timestamp")]
    )  # fmt: skip
    recent = decayed_interactions(events, CUSTOMERS, ITEMS, half_life_days=7.0)
    assert recent.shape == (5, 6) and recent[0, 5] > 100 * recent[2, 0]
    lists = ranked_lists(table, history(), n=3, recent=recent)
    assert lists["trending"].items.tolist()[0] == 5
    assert lists["popular"].items.tolist()[0] == 0


@pytest.mark.parametrize("chunk_size", [2, 100])
def test_customer_candidates_exclude_history_in_chunks(chunk_size: int) -> None:
    hist = history()
    model = build("itemknn", k=10).fit(hist)
    chunks = list(customer_candidates(model, hist, n=4, chunk_size=chunk_size, progress=False))
    rows = np.concatenate([c[0] for c in chunks])
    assert rows.tolist() == list(range(5))
    items = np.concatenate([c[1] for c in chunks])
    assert items.shape == (5, 4)
    for r in range(5):
        got = set(items[r][items[r] >= 0].tolist())
        assert got and not got & set(hist[r].indices.tolist())
    expected, _ = model.recommend(np.arange(5), 4, exclude=hist)
    np.testing.assert_array_equal(items, expected)
    sims = list(similar_candidates(model, n=2, chunk_size=4, progress=False))
    assert np.concatenate([s[0] for s in sims]).tolist() == list(range(6))
    assert all((s[1] != s[0][:, None]).all() for s in sims)  # never the item itself


def test_consumed_matrix_keeps_views_and_repeatables_out() -> None:
    table = build_item_table("1", ITEMS, catalog(), repeatable_categories=("Food",))
    ts = datetime(2024, 3, 1, tzinfo=UTC)
    events = pl.DataFrame(
        {
            "customer_id": ["c0", "c0", "c0", "c1", "c1", "nobody"],
            "item_id": ["i0", "i2", "i3", "i1", "i1", "i0"],
            "event_type": ["purchase", "view", "purchase", "rating_pos", "rating_pos", "purchase"],
            "timestamp": [ts] * 6,
        }
    ).with_columns(pl.col("timestamp").cast(EVENT_SCHEMA["timestamp"]))
    consumed = consumed_matrix(events, CUSTOMERS, ITEMS, table, ("purchase", "rating_pos"))
    # c0 bought i0 (excluded) and i3 (Food: repeatable, stays a candidate); i2 only viewed
    assert consumed[0].indices.tolist() == [0]
    assert consumed[1].indices.tolist() == [1] and consumed[1].data.tolist() == [1.0]
    assert consumed.shape == (5, 6) and consumed.nnz == 2  # unknown customer ignored


def test_candidates_leave_out_only_the_excluded_items() -> None:
    model = build("popularity").fit(history())
    exclude = sp.csr_matrix(([1.0], ([0], [0])), shape=(5, 6))
    ((rows, items, _),) = list(customer_candidates(model, exclude, n=6, progress=False))
    assert 0 not in items[0].tolist() and 1 in items[0].tolist()  # i1 in history, not excluded
    assert 0 in items[1].tolist()
