"""Business rules over item indices of one published version: pure, no I/O.

The rules that depend on the customer return the item indices they ban (bought, in the
cart, capped by email); the request's filters return a boolean mask over the candidates
(category, price); ``mmr`` diversifies. ``serving.rerank`` combines them, and
``serving.kernels.pick`` applies the ban list, stock and the per-category cap in one pass;
the API never applies rules itself.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import numpy as np

from serving.types import ItemTable, OnlineState

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


def bought_items(
    table: ItemTable, state: OnlineState, repeatable_codes: np.ndarray | None = None
) -> np.ndarray:
    """Indices of the items the customer bought that may not be bought again.

    Items flagged ``repeatable`` in the table (consumables) and items in a repeatable
    category (``repeatable_codes``) stay recommendable after a purchase.
    """
    bought = indices_of(table, state.purchased)
    if not bought.size:
        return bought
    again = table.repeatable[bought]
    if repeatable_codes is not None and repeatable_codes.size:
        again = again | np.isin(table.category[bought], repeatable_codes)
    return bought[~again]


def cart_items(table: ItemTable, state: OnlineState) -> np.ndarray:
    """Indices of the items in the customer's cart."""
    return indices_of(table, state.cart)


def category_mask(
    items: np.ndarray,
    table: ItemTable,
    include: Collection[str] = (),
    exclude: Collection[str] = (),
) -> np.ndarray:
    """True where the item's category is under one of ``include`` (when given) and under
    none of ``exclude``."""
    keep = np.ones(items.shape[0], dtype=bool)
    if not include and not exclude:
        return keep
    cats = table.category[items]
    if include:
        keep &= np.isin(cats, category_codes(table, include))
    if exclude:
        keep &= ~np.isin(cats, category_codes(table, exclude))
    return keep


def price_mask(
    items: np.ndarray, table: ItemTable, low: float | None = None, high: float | None = None
) -> np.ndarray:
    """True where ``low <= price <= high``; an unknown price (NaN) passes only when no
    bound is given."""
    keep = np.ones(items.shape[0], dtype=bool)
    if low is None and high is None:
        return keep
    price = table.price[items]
    if low is not None:
        keep &= price >= low
    if high is not None:
        keep &= price <= high
    return keep


def email_capped_items(
    table: ItemTable,
    state: OnlineState,
    now: float,
    last_emails: int = 3,
    days: float = 7.0,
) -> np.ndarray:
    """Indices of the items sent in one of the customer's last ``last_emails`` emails or in
    the last ``days`` days (frequency capping for the email channel).

    An email is one send timestamp; all items of a batch share it.
    """
    if not state.email_sent:
        return np.empty(0, np.int64)
    cutoff = now - days * DAY
    if last_emails > 0:
        sends = sorted({ts for stamps in state.email_sent.values() for ts in stamps}, reverse=True)
        cutoff = min(cutoff, sends[min(last_emails, len(sends)) - 1])
    capped = [item for item, stamps in state.email_sent.items() if stamps and max(stamps) >= cutoff]
    return indices_of(table, capped)


def mmr(
    order: np.ndarray, scores: np.ndarray, categories: np.ndarray, n: int, lam: float = 0.7
) -> np.ndarray:
    """Maximal marginal relevance: greedily pick ``argmax lam*score - (1-lam)*max_sim`` where
    two items are similar (1) when they share a category, else 0.

    ``order`` is positions best first; ``scores[i]`` and ``categories[i]`` belong to
    ``order[i]`` (scores of any scale: they are rescaled to [0, 1] here).
    """
    if order.size == 0 or n <= 0:
        return order[:0]
    rel = scores.astype(np.float64)
    span = rel.max() - rel.min()
    rel = (rel - rel.min()) / span if span > 0 else np.ones_like(rel)
    cats = categories
    penalty = np.zeros(order.size)
    free = np.ones(order.size, dtype=bool)
    picked: list[int] = []
    for _ in range(min(n, order.size)):
        value = np.where(free, lam * rel - (1.0 - lam) * penalty, -np.inf)
        best = int(np.argmax(value))
        picked.append(best)
        free[best] = False
        if cats[best] >= 0:
            penalty[cats == cats[best]] = 1.0
    return order[np.asarray(picked, dtype=np.int64)]
