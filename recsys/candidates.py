"""Candidate generation for one model version: what publishing writes to the store.

- :func:`customer_candidates`: top-N (default 100) per known customer from the model's batched
  ``recommend``, excluding each customer's history, in chunks (a generator, so publishing
  writes chunk k while nothing else is held in memory);
- :func:`similar_candidates`: the model's ``similar_items`` (default 50) per item, in chunks;
- :func:`ranked_lists`: popular and trending lists, global and per category (every level of
  the category path), from ``recsys.models.Popularity`` over the training interactions
  (popular) and over recent events with a half-life decay (trending);
- :func:`build_item_table`: the item metadata rules need (category, price, in_stock,
  created_at = newness, repeatable) in the model's item order, from the catalog.

Item indices are the model's columns; ``ItemTable.item_ids`` maps them back to external ids.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from features.idmap import IdMap
from features.schema import CATEGORY_SEPARATOR
from recsys.models.base import RecommenderBase
from serving.store.keys import list_name
from serving.types import Candidates, ItemTable

TRUE_STRINGS = ("1", "true", "yes", "y", "t")


@dataclass(frozen=True)
class CandidateConfig:
    """How many candidates of each kind a version gets."""

    n_candidates: int = 100  # per customer
    n_similar: int = 50  # per item
    n_popular: int = 200  # per popular/trending list (global and per category)
    chunk_size: int = 20_000  # customers (or items) per recommend call
    trending_half_life_days: float = 7.0
    repeatable_categories: tuple[str, ...] = ()  # category path prefixes (consumables)
    # What a customer must not get back as a candidate: items they consumed through these
    # event types (except repeatable items). Viewed or carted items stay candidates: a product
    # looked at but not bought is often the best thing to show again; serving's rules filter
    # the live cart and new purchases.
    exclude_types: tuple[str, ...] = ("purchase", "rating_pos", "rating_neg")


# --- item table ----------------------------------------------------------------------------


def _category_prefixes(path: str) -> list[str]:
    levels = [p.strip() for p in path.split(CATEGORY_SEPARATOR.strip())]
    levels = [p for p in levels if p]
    return [CATEGORY_SEPARATOR.join(levels[: k + 1]) for k in range(len(levels))]


def build_item_table(
    version: str,
    items: IdMap,
    catalog: pl.DataFrame | None = None,
    repeatable_categories: Sequence[str] = (),
) -> ItemTable:
    """The item table of a version, in the order of ``items`` (the model's columns).

    ``categories`` holds every category path *and all its parent paths* (so per-category lists
    exist for "Home" as well as "Home > Kitchen"); an item's code is its full path. Items
    missing from the catalog get category -1, NaN price/created_at and in_stock True.
    An item is repeatable when its catalog has a truthy ``repeatable`` column or its
    category starts with one of ``repeatable_categories``.
    """
    n = len(items)
    category = np.full(n, -1, dtype=np.int32)
    price = np.full(n, np.nan, dtype=np.float32)
    in_stock = np.ones(n, dtype=bool)
    created_at = np.full(n, np.nan, dtype=np.float64)
    repeatable = np.zeros(n, dtype=bool)
    names: list[str] = []
    if catalog is not None and catalog.height:
        frame = catalog.with_columns(pl.col("item_id").cast(pl.String)).unique(
            "item_id", keep="first"
        )
        rows = items.index_of(frame["item_id"])
        keep = rows >= 0
        frame, rows = frame.filter(pl.Series(keep)), rows[keep]
        if "category" in frame.columns:
            paths = frame["category"].cast(pl.String).fill_null("").to_list()
            full = [_category_prefixes(p) for p in paths]
            names = sorted({prefix for prefixes in full for prefix in prefixes})
            code = {name: i for i, name in enumerate(names)}
            category[rows] = [code[p[-1]] if p else -1 for p in full]
        if "price" in frame.columns:
            price[rows] = frame["price"].cast(pl.Float64, strict=False).fill_null(np.nan)
        if "in_stock" in frame.columns:
            stock = frame["in_stock"]
            if stock.dtype != pl.Boolean:
                stock = stock.cast(pl.String).str.to_lowercase().is_in(TRUE_STRINGS)
            in_stock[rows] = stock.fill_null(True).to_numpy()
        if "created_at" in frame.columns:
            created = frame["created_at"]
            if created.dtype == pl.String:
                created = created.str.to_datetime(time_zone="UTC", strict=False)
            if isinstance(created.dtype, pl.Datetime):
                seconds = created.dt.epoch("us").cast(pl.Float64) / 1e6
                created_at[rows] = seconds.fill_null(np.nan).to_numpy()
        if "repeatable" in frame.columns:
            flag = frame["repeatable"].cast(pl.String).str.to_lowercase().is_in(TRUE_STRINGS)
            repeatable[rows] = flag.to_numpy()
    if repeatable_categories and names:
        prefixes = tuple(repeatable_categories)
        rep_codes = np.array([n.startswith(prefixes) for n in names] + [False])
        repeatable |= rep_codes[category]  # code -1 picks the trailing False
    return ItemTable(
        version=version,
        item_ids=np.asarray(items.ids, dtype=object),
        category=category,
        categories=tuple(names),
        price=price,
        in_stock=in_stock,
        created_at=created_at,
        repeatable=repeatable,
    )


def category_matrix(table: ItemTable) -> sp.csr_matrix:
    """Item x (1 + categories): column 0 is every item (global), column 1 + c category code c
    *including its parent paths* (an item in "A > B" counts for "A" too)."""
    code = {name: i for i, name in enumerate(table.categories)}
    parents = [
        [code[p] for p in _category_prefixes(name) if p in code] for name in table.categories
    ]
    depth = max((len(p) for p in parents), default=0)
    lookup = np.full((len(parents) + 1, depth), -1, dtype=np.int64)  # last row: code -1
    for c, p in enumerate(parents):
        lookup[c, : len(p)] = p
    item_parents = lookup[table.category]  # (n_items, depth)
    r, d = np.nonzero(item_parents >= 0)
    rows = np.concatenate([np.arange(table.n_items), r])
    cols = np.concatenate([np.zeros(table.n_items, np.int64), 1 + item_parents[r, d]])
    data = np.ones(len(rows), dtype=np.float32)
    shape = (table.n_items, 1 + len(table.categories))
    return sp.csr_matrix((data, (rows, cols)), shape=shape)


# --- ranked lists --------------------------------------------------------------------------


def _lists_from(model: RecommenderBase, kind: str, n: int) -> dict[str, Candidates]:
    top_items, top_scores = model.top_per_feature(n)  # type: ignore[attr-defined]
    out: dict[str, Candidates] = {}
    for col in range(top_items.shape[0]):
        valid = top_items[col] >= 0
        if not valid.any():
            continue
        out[list_name(kind, None if col == 0 else col - 1)] = Candidates(
            top_items[col][valid].astype(np.int32), top_scores[col][valid].astype(np.float32)
        )
    return out


def decayed_interactions(
    events: pl.DataFrame,
    customers: IdMap,
    items: IdMap,
    half_life_days: float,
) -> sp.csr_matrix:
    """Customer x item matrix of recency-decayed event weights (for trending), model maps."""
    from features.interactions import InteractionConfig, aggregate

    pairs = aggregate(events, InteractionConfig(half_life_days=half_life_days, confidence="linear"))
    rows = customers.index_of(pairs["customer_id"])
    cols = items.index_of(pairs["item_id"])
    keep = (rows >= 0) & (cols >= 0)
    weights = pairs["weight"].to_numpy()[keep].astype(np.float32)
    return sp.csr_matrix((weights, (rows[keep], cols[keep])), shape=(len(customers), len(items)))


def ranked_lists(
    table: ItemTable,
    interactions: sp.csr_matrix,
    n: int = 200,
    recent: sp.csr_matrix | None = None,
) -> dict[str, Candidates]:
    """Popular (distinct customers per item, training interactions) and trending (``recent``:
    decay-weighted interactions, see :func:`decayed_interactions`; defaults to popular) lists,
    global and per category code, named by ``serving.store.keys.list_name``."""
    from recsys.models.popularity import Popularity

    features = category_matrix(table)
    popular = Popularity(kind="global", confidence="binary").fit(interactions, features)
    out = _lists_from(popular, "popular", n)
    if recent is None or recent.nnz == 0:
        recent = interactions
    trending = Popularity(kind="trending", confidence="linear").fit(recent, features)
    out.update(_lists_from(trending, "trending", n))
    return out


# --- per customer and per item -------------------------------------------------------------


def consumed_matrix(
    events: pl.DataFrame,
    customers: IdMap,
    items: IdMap,
    table: ItemTable,
    event_types: Sequence[str],
) -> sp.csr_matrix:
    """customers x items: 1 where the customer consumed the item through ``event_types``
    (bought it, rated it), leaving out repeatable items (they may be bought again)."""
    consumed = events.filter(pl.col("event_type").is_in(list(event_types)))
    rows = customers.index_of(consumed["customer_id"])
    cols = items.index_of(consumed["item_id"])
    keep = (rows >= 0) & (cols >= 0)
    rows, cols = rows[keep], cols[keep]
    keep = ~table.repeatable[cols]
    matrix = sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], cols[keep])),
        shape=(len(customers), len(items)),
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def _progress(total: int, desc: str, enabled: bool):  # type: ignore[no-untyped-def]
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="rows", disable=not enabled, leave=False)


def customer_candidates(
    model: RecommenderBase,
    exclude: sp.csr_matrix,
    n: int = 100,
    chunk_size: int = 20_000,
    rows: np.ndarray | None = None,
    progress: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(rows, items, scores)`` per chunk of customers: the model's top ``n`` leaving
    out each customer's ``exclude`` items (CSR, customers x items in the model's maps)."""
    exclude = sp.csr_matrix(exclude)
    all_rows = np.arange(exclude.shape[0]) if rows is None else np.asarray(rows)
    with _progress(len(all_rows), "candidates", progress) as bar:
        for start in range(0, len(all_rows), chunk_size):
            chunk = all_rows[start : start + chunk_size]
            items, scores = model.recommend(chunk, n, exclude=exclude[chunk])
            bar.update(len(chunk))
            yield chunk, items, scores


def similar_candidates(
    model: RecommenderBase, n: int = 50, chunk_size: int = 20_000, progress: bool = True
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(item_rows, items, scores)`` per chunk of items: the model's ``similar_items``."""
    n_items = model.n_items
    with _progress(n_items, "similar items", progress) as bar:
        for start in range(0, n_items, chunk_size):
            chunk = np.arange(start, min(start + chunk_size, n_items))
            items, scores = model.similar_items(chunk, n)
            bar.update(len(chunk))
            yield chunk, items, scores
