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

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import NamedTuple

import numpy as np

from serving import kernels, rules
from serving.types import Candidates, ItemTable, OnlineState, RankedItem

CONTEXTS: tuple[str, ...] = ("home", "product", "cart", "email")

FOR_YOU = "for_you"
SIMILAR_TO_VIEWED = "similar_to_viewed"
SIMILAR_TO_CART = "similar_to_cart"
SIMILAR_TO_ITEM = "similar_to_item"
TRENDING_IN_CATEGORY = "trending_in_category"
POPULAR = "popular"
TRENDING = "trending"

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
class Seed:
    """An item whose similar list joins the pool, with its weight and the reason it gives."""

    item_id: str
    weight: float
    reason_code: str  # similar_to_viewed | similar_to_cart | similar_to_item


@dataclass(frozen=True, slots=True)
class Fallback:
    """Non-personal lists of one version (cached in process by the API)."""

    popular: Candidates
    trending: Candidates = field(default_factory=Candidates.empty)
    trending_by_category: Mapping[str, Candidates] = field(default_factory=dict)


def session_seeds(
    state: OnlineState, request: RerankRequest, config: RerankConfig
) -> tuple[Seed, ...]:
    """The items whose similar lists the API must fetch for this request, strongest first.

    The product on screen, the cart (complements), then recent activity weighted by event
    type and recency; one seed per item (its strongest weight), at most ``max_seeds``.
    """
    offers: list[tuple[str, float, str]] = []  # (item, weight, reason code)
    if request.context == "product" and request.item_id:
        offers.append((request.item_id, config.product_seed_weight, SIMILAR_TO_ITEM))
    cart_weight = (
        config.cart_context_seed_weight if request.context == "cart" else config.cart_seed_weight
    )
    offers += [(item, cart_weight, SIMILAR_TO_CART) for item in state.cart]
    half_life = max(config.session_half_life_s, 1e-9)
    weights, now = config.event_weights, request.now
    for act in state.recent:
        age = max(now - act.ts, 0.0)
        offers.append(
            (
                act.item_id,
                weights.get(act.event_type, 0.0) * 0.5 ** (age / half_life),
                SIMILAR_TO_VIEWED,
            )
        )
    best: dict[str, tuple[float, str]] = {}  # one per item: its strongest offer
    for item, weight, code in offers:
        if weight > 0:
            held = best.get(item)
            if held is None or held[0] < weight:
                best[item] = (weight, code)
    ranked = sorted(best.items(), key=lambda kv: -kv[1][0])[: config.max_seeds]
    return tuple(Seed(item, weight, code) for item, (weight, code) in ranked)


def fallback_category(table: ItemTable, state: OnlineState, request: RerankRequest) -> str | None:
    """The category whose trending list backs a thin answer: the requested category, else
    the product on screen's, else that of the most recent activity."""
    if request.category:
        return request.category
    for item in [request.item_id, *(a.item_id for a in state.recent)]:
        idx = table.index.get(item) if item else None
        if idx is not None and table.category[idx] >= 0:
            return table.categories[int(table.category[idx])]
    return None


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


def _trending_for(fallback: Fallback, category: str | None) -> tuple[str, Candidates] | None:
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


def rerank(
    table: ItemTable,
    candidates: Candidates,
    state: OnlineState,
    seeds: tuple[Seed, ...],
    similar: Mapping[str, Candidates],
    fallback: Fallback,
    request: RerankRequest,
    config: RerankConfig,
) -> list[RankedItem]:
    """Rank at most ``request.n`` items for one customer; see the module docstring."""
    n = request.n
    if n <= 0:
        return []
    banned = _banned(table, state, request, config)
    # Fast path: the personal pool alone fills the list under the rules and diversity
    # (pool and pick in one compiled call when the request has no filters of its own).
    fused = fused_pick(request, config)
    pool, chosen = _personal(
        table, candidates, seeds, similar, request.now, config, (banned, n) if fused else None
    )
    p_items = pool.items
    if not fused and p_items.size >= n:
        order = np.arange(p_items.size)  # the pool is best first
        chosen = _pick(order, p_items, _key(pool), table, banned, request, config, fill=False)
    if chosen.size >= n:
        return _explain(chosen, p_items, _key(pool, chosen), pool, [], table)

    # -- fallback chain: trending in category, popular, trending ------------------------
    chain: list[tuple[np.ndarray, str, str]] = []  # (items best first, code, arg)
    trend = _trending_for(fallback, fallback_category(table, state, request))
    if trend is not None:
        chain.append((trend[1].items.astype(np.int64, copy=False), TRENDING_IN_CATEGORY, trend[0]))
    if len(fallback.popular):
        chain.append((fallback.popular.items.astype(np.int64, copy=False), POPULAR, ""))
    if len(fallback.trending):
        chain.append((fallback.trending.items.astype(np.int64, copy=False), TRENDING, ""))

    items = np.concatenate([p_items] + [c[0] for c in chain]) if chain else p_items
    # Key for ordering/diversity: personal items score above every fallback item.
    # Reported scores: 1 + combined score for personal items, (0, 1) by list position after.
    n_stages = len(chain)
    fb_key = [
        (n_stages - stage - 1 + (c[0].size - np.arange(c[0].size)) / (c[0].size + 1.0)) / n_stages
        for stage, c in enumerate(chain)
    ]
    key = np.concatenate([_key(pool), *fb_key])

    # Dedupe (first occurrence wins: the personal pool, then the chain in order).
    _, first = np.unique(items, return_index=True)
    keep_pos = np.sort(first) if first.size != items.size else np.arange(items.size)
    order = keep_pos[np.argsort(-key[keep_pos], kind="stable")]
    # diversity may leave the list short: then the best of the rest fill it
    chosen = _pick(order, items, key, table, banned, request, config, fill=True)
    return _explain(chosen, items, key[chosen], pool, chain, table)


class _Pool:
    """The personal pool best first: ``items``, combined ``score``, and for each item the
    position in ``seeds`` of the seed that explains it (``seed``; -1: the model does)."""

    __slots__ = ("items", "score", "seed", "seeds")

    def __init__(
        self,
        items: np.ndarray,
        score: np.ndarray,
        seed: np.ndarray | None = None,
        seeds: Sequence[Seed] = (),
    ) -> None:
        self.items, self.score, self.seed, self.seeds = items, score, seed, seeds

    def reasons(self, positions: list[int]) -> list[tuple[str, str]]:
        """(reason code, argument) of the pool items at ``positions``."""
        if self.seed is None or not self.seeds or not positions:
            return [(FOR_YOU, "")] * len(positions)
        out = []
        for k in self.seed[positions].tolist():
            if k >= 0:
                seed = self.seeds[k]
                out.append((seed.reason_code, seed.item_id))
            else:
                out.append((FOR_YOU, ""))
        return out


_NO_ITEMS = np.empty(0, np.int64)
_NO_FLAGS = np.empty(0, bool)
_NO_BITS = np.empty(0, np.uint8)


def _personal(
    table: ItemTable,
    candidates: Candidates,
    seeds: tuple[Seed, ...],
    similar: Mapping[str, Candidates],
    now: float,
    config: RerankConfig,
    pick: tuple[np.ndarray, int] | None = None,
) -> tuple[_Pool, np.ndarray]:
    """The personal pool: model candidates and the seeds' similar lists, one entry per item
    (:func:`serving.kernels.personal_pool` merges and scores them in one compiled pass),
    and with ``pick`` (the sorted ban list, n) the positions of the best ``n`` the rules
    and the category cap allow (:func:`serving.kernels.personal_top`; else empty). The
    pool is best first, except that when ``pick`` found all ``n`` it is in no particular order.

    An item a candidate list holds twice keeps its best model score; its similarity to
    recent activity sums over every list entry."""
    used = [
        (seed, sims)
        for seed in seeds
        if (sims := similar.get(seed.item_id)) is not None and len(sims.items)
    ]
    if not len(candidates.items) and not used:
        return _Pool(_NO_ITEMS, np.empty(0)), _NO_ITEMS
    if used:
        s_items = np.concatenate([sims.items for _, sims in used], dtype=np.int64)
        s_scores = np.concatenate([sims.scores for _, sims in used], dtype=np.float64)
        s_starts = np.array(list(accumulate((len(sims.items) for _, sims in used), initial=0)))
    else:
        s_items, s_scores, s_starts = _NO_ITEMS, np.empty(0), np.zeros(1, np.int64)
    args = (
        candidates.items.astype(np.int64),
        candidates.scores.astype(np.float64),
        s_items,
        s_scores,
        s_starts,
        np.array([seed.weight for seed, _ in used], dtype=np.float64),
        float(config.model_weight),
        float(config.session_weight),
        table.created_at.astype(np.float64, copy=False),
        _NO_BITS,  # no "may be new" bitmap: check every item's created_at
        float(now - config.new_arrival_days * rules.DAY),
        float(config.new_arrival_boost),
        promoted_items(table, config),
        float(config.promoted_boost),
    )
    if pick is None:
        items, score, seed = kernels.personal_pool(*args)
        chosen = _NO_ITEMS
    else:
        banned, n = pick
        items, score, seed, chosen = kernels.personal_top(
            *args,
            table.in_stock,
            banned,
            table.category,
            len(table.categories),
            n,
            category_cap(config),
        )
    if not used:
        return _Pool(items, score), chosen
    return _Pool(items, score, seed, [seed for seed, _ in used]), chosen


def _key(pool: _Pool, positions: np.ndarray | None = None) -> np.ndarray:
    """Ordering key of pool items (all, or at ``positions``): 1 + combined score, so every
    personal item ranks above the fallback lists' (0, 1)."""
    score = pool.score if positions is None else pool.score[positions]
    return 1.0 + np.maximum(score, 0.0)


def category_cap(config: RerankConfig) -> int:
    """Items per category the diversity rule allows (0: no cap)."""
    return config.max_per_category if config.diversity == "cap" else 0


def fused_pick(request: RerankRequest, config: RerankConfig) -> bool:
    """Whether the personal pool and the pick run as one compiled call: no MMR and none of
    the request's own filters (category include/exclude, price range)."""
    return config.diversity != "mmr" and not (
        request.category
        or request.exclude_categories
        or request.price_min is not None
        or request.price_max is not None
    )


def promoted_items(table: ItemTable, config: RerankConfig) -> np.ndarray:
    """Sorted indices of the promoted items that get a boost (none when no boost)."""
    if config.promoted and config.promoted_boost:
        return np.sort(rules.indices_of(table, config.promoted))
    return _NO_ITEMS


def _banned(
    table: ItemTable, state: OnlineState, request: RerankRequest, config: RerankConfig
) -> np.ndarray:
    """Indices never to show in this request, sorted: bought (unless repeatable), in the
    cart (by context), excluded by the request, the product on screen, capped by email."""
    banned: list[np.ndarray] = []
    if state.purchased:
        codes = rules.category_codes(table, config.repeatable_categories)
        banned.append(rules.bought_items(table, state, codes))
    if state.cart and request.context in config.cart_excluded_contexts:
        banned.append(rules.cart_items(table, state))
    drop = list(request.exclude)
    if request.item_id:
        drop.append(request.item_id)  # never recommend the product on screen
    if drop:
        banned.append(rules.indices_of(table, drop))
    if request.context == "email" and state.email_sent:
        banned.append(
            rules.email_capped_items(
                table, state, request.now, config.email_cap_last, config.email_cap_days
            )
        )
    if not banned:
        return _NO_ITEMS
    return np.sort(banned[0] if len(banned) == 1 else np.concatenate(banned))


def _request_mask(items: np.ndarray, table: ItemTable, request: RerankRequest) -> np.ndarray:
    """The request's own filters (category include/exclude, price range) over ``items``;
    empty when it has none."""
    keep = _NO_FLAGS
    if request.category or request.exclude_categories:
        include = (request.category,) if request.category else ()
        keep = rules.category_mask(items, table, include, request.exclude_categories)
    if request.price_min is not None or request.price_max is not None:
        price = rules.price_mask(items, table, request.price_min, request.price_max)
        keep = keep & price if keep.size else price
    return keep


def _pick(
    order: np.ndarray,
    items: np.ndarray,
    key: np.ndarray,
    table: ItemTable,
    banned: np.ndarray,
    request: RerankRequest,
    config: RerankConfig,
    fill: bool,
) -> np.ndarray:
    """Positions from ``order`` (best first) that the rules allow, after the diversity
    rule, at most ``request.n``; with ``fill``, items the diversity rule held back top up
    a short list."""
    n = request.n
    keep = _request_mask(items, table, request)
    n_codes = len(table.categories)
    if config.diversity == "mmr":
        allowed = kernels.pick(
            order,
            items,
            table.in_stock,
            banned,
            keep,
            table.category,
            n_codes,
            order.size,
            0,
            False,
        )
        cats = table.category[items[allowed]]
        return rules.mmr(allowed, key[allowed], cats, n, config.mmr_lambda)
    return kernels.pick(
        order,
        items,
        table.in_stock,
        banned,
        keep,
        table.category,
        n_codes,
        n,
        category_cap(config),
        fill,
    )


def _explain(
    chosen: np.ndarray,
    items: np.ndarray,
    key: np.ndarray,  # the ordering key of each chosen item
    pool: _Pool,
    chain: list[tuple[np.ndarray, str, str]],
    table: ItemTable,
) -> list[RankedItem]:
    n_personal = pool.items.shape[0]
    positions = chosen.tolist()
    ids = table.item_ids[items[chosen]].tolist()
    scores = key.tolist()
    if chain:
        bounds = np.cumsum([n_personal] + [c[0].size for c in chain]).tolist()
    personal = iter(pool.reasons([p for p in positions if p < n_personal]))
    out: list[RankedItem] = []
    for pos, item_id, score in zip(positions, ids, scores, strict=True):
        if pos < n_personal:
            code, arg = next(personal)
        else:
            _, code, arg = chain[bisect_right(bounds, pos) - 1]
        out.append(RankedItem(str(item_id), round(score, 6), reason_text(code, arg), code))
    return out
