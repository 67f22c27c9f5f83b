"""A local copy of popular/trending lists for degraded answers (Redis down, version missing).

The API refreshes the copy from the store while healthy and persists it to a file, so a
restart while Redis is down still answers. The copy holds a small item table with only the
items of its lists, so the same rules and re-ranking apply to degraded answers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from serving.rerank import Fallback
from serving.types import Candidates, ItemTable

ListName = Callable[[str, int | None], str]  # (kind, category code) -> list name in the store


@dataclass(frozen=True, slots=True)
class LocalCopy:
    """Fallback lists of one version with the item table they index into."""

    version: str
    table: ItemTable
    fallback: Fallback
    saved_at: float


def fallback_from_lists(
    table: ItemTable, lists: Mapping[str, Candidates], name: ListName
) -> Fallback:
    """Popular, trending and trending per category (by category path) of one version."""
    by_category: dict[str, Candidates] = {}
    for code, path in enumerate(table.categories):
        found = lists.get(name("trending", code))
        if found is None or not len(found):
            found = lists.get(name("popular", code))
        if found is not None and len(found):
            by_category[path] = found
    return Fallback(
        popular=lists.get(name("popular", None), Candidates.empty()),
        trending=lists.get(name("trending", None), Candidates.empty()),
        trending_by_category=by_category,
    )


def local_copy(table: ItemTable, fallback: Fallback, now: float | None = None) -> LocalCopy:
    """Shrink ``fallback`` of a version to the items it uses (a copy small enough to persist)."""
    lists = [fallback.popular, fallback.trending, *fallback.trending_by_category.values()]
    used = np.unique(np.concatenate([c.items.astype(np.int64) for c in lists] + [np.empty(0)]))
    used = used.astype(np.int64)
    remap = {int(old): new for new, old in enumerate(used.tolist())}

    def shrink(c: Candidates) -> Candidates:
        items = np.fromiter((remap[int(i)] for i in c.items.tolist()), np.int32, len(c))
        return Candidates(items, c.scores.astype(np.float32))

    small = ItemTable(
        version=table.version,
        item_ids=table.item_ids[used],
        category=table.category[used],
        categories=table.categories,
        price=table.price[used],
        in_stock=table.in_stock[used],
        created_at=table.created_at[used],
        repeatable=table.repeatable[used],
    )
    small_fallback = Fallback(
        popular=shrink(fallback.popular),
        trending=shrink(fallback.trending),
        trending_by_category={k: shrink(v) for k, v in fallback.trending_by_category.items()},
    )
    return LocalCopy(table.version, small, small_fallback, time.time() if now is None else now)


def _floats(values: np.ndarray) -> list[float | None]:
    return [None if v != v else v for v in values.astype(np.float64).tolist()]  # NaN -> null


def _array(values: list[Any], dtype: Any) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=dtype)


def _ranked(c: Candidates) -> list[list[Any]]:
    return [c.items.tolist(), c.scores.astype(np.float64).tolist()]


def _unranked(raw: list[list[Any]]) -> Candidates:
    return Candidates(np.array(raw[0], np.int32), np.array(raw[1], np.float32))


def save(copy: LocalCopy, path: Path) -> None:
    """Write the copy atomically (temp file + rename)."""
    t = copy.table
    doc = {
        "version": copy.version,
        "saved_at": copy.saved_at,
        "items": {
            "ids": [str(x) for x in t.item_ids.tolist()],
            "category": t.category.tolist(),
            "categories": list(t.categories),
            "price": _floats(t.price),
            "in_stock": t.in_stock.tolist(),
            "created_at": _floats(t.created_at),
            "repeatable": t.repeatable.tolist(),
        },
        "popular": _ranked(copy.fallback.popular),
        "trending": _ranked(copy.fallback.trending),
        "trending_by_category": {
            k: _ranked(v) for k, v in copy.fallback.trending_by_category.items()
        },
    }
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(orjson.dumps(doc))
    os.replace(tmp, path)


def load(path: Path) -> LocalCopy | None:
    """Read a saved copy; None when there is none or it cannot be read."""
    path = path.expanduser()
    try:
        doc = orjson.loads(path.read_bytes())
        items = doc["items"]
        table = ItemTable(
            version=doc["version"],
            item_ids=np.array(items["ids"], dtype=object),
            category=np.array(items["category"], dtype=np.int32),
            categories=tuple(items["categories"]),
            price=_array(items["price"], np.float32),
            in_stock=np.array(items["in_stock"], dtype=bool),
            created_at=_array(items["created_at"], np.float64),
            repeatable=np.array(items["repeatable"], dtype=bool),
        )
        fallback = Fallback(
            popular=_unranked(doc["popular"]),
            trending=_unranked(doc["trending"]),
            trending_by_category={k: _unranked(v) for k, v in doc["trending_by_category"].items()},
        )
        return LocalCopy(doc["version"], table, fallback, float(doc["saved_at"]))
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
