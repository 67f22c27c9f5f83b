"""The re-ranking rules in plain Python and numpy: the reference the compiled core
(``serving.core``) is compared against, on hand-written cases (``test_rerank.py``) and on
random requests (``test_core.py``). Not used by the service.

Everything a request can ask for goes through :func:`rerank`; what it does is what
``serving.core.pipeline`` must do.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate

import numpy as np

from serving import kernels, rules
from serving.core.arrays import category_cap, promoted_items
from serving.rerank import (
    FOR_YOU,
    POPULAR,
    SIMILAR_TO_CART,
    SIMILAR_TO_ITEM,
    SIMILAR_TO_VIEWED,
    TRENDING,
    TRENDING_IN_CATEGORY,
    Fallback,
    RerankConfig,
    RerankRequest,
    reason_text,
    trending_for,
)
from serving.rules import category_codes, indices_of
from serving.types import Candidates, ItemTable, OnlineState, RankedItem

DAY = rules.DAY


@dataclass(frozen=True, slots=True)
class Seed:
    """An item whose similar list joins the pool, with its weight and the reason it gives."""

    item_id: str
    weight: float
    reason_code: str  # similar_to_viewed | similar_to_cart | similar_to_item


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
    trend = trending_for(fallback, fallback_category(table, state, request))
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


def fused_pick(request: RerankRequest, config: RerankConfig) -> bool:
    """Whether the personal pool and the pick run as one compiled call: no MMR and none of
    the request's own filters (category include/exclude, price range)."""
    return config.diversity != "mmr" and not (
        request.category
        or request.exclude_categories
        or request.price_min is not None
        or request.price_max is not None
    )


def _banned(
    table: ItemTable, state: OnlineState, request: RerankRequest, config: RerankConfig
) -> np.ndarray:
    """Indices never to show in this request, sorted: bought (unless repeatable), in the
    cart (by context), excluded by the request, the product on screen, capped by email."""
    banned: list[np.ndarray] = []
    if state.purchased:
        codes = rules.category_codes(table, config.repeatable_categories)
        banned.append(bought_items(table, state, codes))
    if state.cart and request.context in config.cart_excluded_contexts:
        banned.append(cart_items(table, state))
    drop = list(request.exclude)
    if request.item_id:
        drop.append(request.item_id)  # never recommend the product on screen
    if drop:
        banned.append(rules.indices_of(table, drop))
    if request.context == "email" and state.email_sent:
        banned.append(
            email_capped_items(
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
        keep = category_mask(items, table, include, request.exclude_categories)
    if request.price_min is not None or request.price_max is not None:
        price = price_mask(items, table, request.price_min, request.price_max)
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
        return mmr(allowed, key[allowed], cats, n, config.mmr_lambda)
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
