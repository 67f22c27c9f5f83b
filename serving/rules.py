"""Business rules over item indices of one published version: pure, no I/O.

The rules that depend on the customer return the item indices they ban (bought, in the
cart, capped by email); the request's filters return a boolean mask over the candidates
(category, price); ``mmr`` diversifies. ``serving.rerank`` combines them, and
``serving.kernels.pick`` applies the ban list, stock and the per-category cap in one pass;
the API never applies rules itself.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from serving.types import ItemTable

CATEGORY_SEPARATOR = " > "  # the same as features.schema (serving does not import polars)
DAY = 86_400.0


def indices_of(table: ItemTable, ids: Iterable[str]) -> np.ndarray:
    """Indices of the known ``ids`` (unknown ids are dropped: an unseen item cannot match)."""
    index = table.index
    return np.fromiter((index[i] for i in ids if i in index), dtype=np.int64)


def category_codes(table: ItemTable, paths: Iterable[str]) -> np.ndarray:
    """Codes of the categories equal to, or below, any of ``paths`` ("Home" matches
    "Home > Kitchen"); matching is case-insensitive and ignores surrounding spaces."""
    wanted = [p.strip().lower() for p in paths if p and p.strip()]
    if not wanted:
        return np.empty(0, np.int32)
    codes = [
        code
        for code, name in enumerate(table.categories)
        if any(_under(name.lower(), w) for w in wanted)
    ]
    return np.asarray(codes, dtype=np.int32)


def _under(name: str, path: str) -> bool:
    return name == path or name.startswith(path + CATEGORY_SEPARATOR.lower())
