"""Per-request re-ranking: candidates + online state + rules -> a ranked, explained list.

Pure functions, no I/O. The API reads everything first (candidates and online state in one
round trip, similar lists of the session seeds, the version's item table and fallback lists)
and then calls :func:`rerank`:

1. the pool: the customer's model candidates plus items similar to the session seeds
   (recently viewed / carted items, the product on screen), each seed weighted by event type
   and recency;
2. score = ``model_weight * normalised model score + session_weight * similarity to recent
   activity + boosts`` (new arrivals, promoted items);
3. rules drop what may not be shown (purchased, cart, out of stock, exclude list, category,
   price, email frequency cap);
4. the cold-start chain fills whatever is missing: session-based items come from the pool,
   then trending in the customer's category, then popular;
5. diversity: at most ``k`` per category, or MMR.

Each item carries a reason a person can read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from serving import rules
from serving.types import Candidates

CONTEXTS: tuple[str, ...] = ("home", "product", "cart", "email")

FOR_YOU = "for_you"
SIMILAR_TO_VIEWED = "similar_to_viewed"
SIMILAR_TO_CART = "similar_to_cart"
SIMILAR_TO_ITEM = "similar_to_item"
TRENDING_IN_CATEGORY = "trending_in_category"
POPULAR = "popular"
TRENDING = "trending"
REASON_CODES: tuple[str, ...] = (
    FOR_YOU,
    SIMILAR_TO_VIEWED,
    SIMILAR_TO_CART,
    SIMILAR_TO_ITEM,
    TRENDING_IN_CATEGORY,
    POPULAR,
    TRENDING,
)  # the order of the compiled core's reason codes (serving.core.pipeline)

DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "add_to_cart": 1.5,
    "email_click": 0.8,
    "purchase": 0.5,
}


@dataclass(frozen=True, slots=True)
class RerankConfig:
    """Tunable re-ranking behaviour (built from ``serving.settings``)."""

    model_weight: float = 1.0
    session_weight: float = 1.2  # what they just did outweighs the best model candidate
    session_half_life_s: float = 1800.0  # recency weight of an activity halves every 30 min
    event_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    cart_seed_weight: float = 1.0  # cart items seed complements
    cart_context_seed_weight: float = 2.0  # ... stronger on the cart page
    product_seed_weight: float = 2.0  # the product on screen (context=product)
    max_seeds: int = 5
    new_arrival_days: float = 14.0
    new_arrival_boost: float = 0.1
    promoted: tuple[str, ...] = ()
    promoted_boost: float = 0.2
    repeatable_categories: tuple[str, ...] = ()
    cart_excluded_contexts: tuple[str, ...] = CONTEXTS
    email_cap_last: int = 3  # items sent in the last 3 emails ...
    email_cap_days: float = 7.0  # ... or in the last 7 days are not sent again
    diversity: str = "cap"  # "cap" (max_per_category) | "mmr" | "none"
    max_per_category: int = 3
    mmr_lambda: float = 0.7


class RerankRequest(NamedTuple):
    """What the caller asked for (a named tuple: one is built on every request)."""

    now: float  # epoch seconds
    n: int = 10
    context: str = "home"
    item_id: str | None = None  # the product on screen (context=product)
    category: str | None = None  # only items under this category path
    exclude_categories: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()  # item ids never to return
    price_min: float | None = None
    price_max: float | None = None


@dataclass(frozen=True, slots=True)
class Fallback:
    """Non-personal lists of one version (cached in process by the API)."""

    popular: Candidates
    trending: Candidates = field(default_factory=Candidates.empty)
    trending_by_category: Mapping[str, Candidates] = field(default_factory=dict)


def reason_text(code: str, arg: str) -> str:
    """The sentence shown to a person for a reason code."""
    if code == SIMILAR_TO_VIEWED:
        return f"because you viewed {arg}"
    if code == SIMILAR_TO_CART:
        return f"goes with {arg} in your cart"
    if code == SIMILAR_TO_ITEM:
        return f"similar to {arg}"
    if code == TRENDING_IN_CATEGORY:
        return f"trending in {arg}"
    if code == TRENDING:
        return "trending"
    if code == POPULAR:
        return "popular"
    return "for you"


def _normalise(scores: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1]; a constant list maps to 1."""
    if scores.size == 0:
        return scores.astype(np.float64)
    s = scores.astype(np.float64)
    lo, hi = s.min(), s.max()
    return (s - lo) / (hi - lo) if hi > lo else np.ones_like(s)


def trending_for(fallback: Fallback, category: str | None) -> tuple[str, Candidates] | None:
    """The trending list of ``category``; else its sub-categories' lists merged (a parent
    asked for); else the list of its nearest parent that has one."""
    if category and category not in fallback.trending_by_category:
        below = category + rules.CATEGORY_SEPARATOR
        children = [
            c for name, c in fallback.trending_by_category.items() if name.startswith(below)
        ]
        if children:
            order = np.argsort(-np.concatenate([_normalise(c.scores) for c in children]))
            merged = Candidates(
                np.concatenate([c.items for c in children])[order],
                np.concatenate([c.scores for c in children])[order],
            )
            return category, merged
    path = category
    while path:
        found = fallback.trending_by_category.get(path)
        if found is not None and len(found):
            return path, found
        cut = path.rfind(rules.CATEGORY_SEPARATOR)
        path = path[:cut] if cut > 0 else None
    return None
