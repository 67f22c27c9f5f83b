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

import numpy as np

from serving import rules
from serving.types import Candidates, ItemTable, OnlineState, RankedItem

CONTEXTS: tuple[str, ...] = ("home", "product", "cart", "email")
_CONTRIB_BITS = 20  # precision of a session contribution when picking an item's reason

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


@dataclass(frozen=True, slots=True)
class RerankRequest:
    """What the caller asked for."""

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
    pool = _personal(table, candidates, seeds, similar, request.now, config)
    p_items = pool.items
    # Fast path: the personal pool alone fills the list under the rules and diversity.
    if p_items.size >= n:
        key = 1.0 + np.maximum(pool.score, 0.0)
        keep_pos = np.flatnonzero(_allowed(p_items, table, state, request, config))
        if keep_pos.size >= n:  # already in score order
            chosen = _diversify(keep_pos, key, p_items, table, n, config)
            if chosen.size >= n:
                return _explain(chosen, p_items, key, pool, [], table)

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
    key = np.concatenate([1.0 + np.maximum(pool.score, 0.0), *fb_key])

    # Dedupe (first occurrence wins: the personal pool, then the chain in order).
    _, first = np.unique(items, return_index=True)
    keep_pos = np.sort(first) if first.size != items.size else np.arange(items.size)
    keep_pos = keep_pos[_allowed(items[keep_pos], table, state, request, config)]
    if keep_pos.size == 0:
        return []
    order = keep_pos[np.argsort(-key[keep_pos], kind="stable")]
    chosen = _diversify(order, key, items, table, n, config)
    if chosen.size < n:  # diversity left the list short: fill with the best of the rest
        rest = order[~np.isin(order, chosen)]
        chosen = np.concatenate([chosen, rest[: n - chosen.size]])
    return _explain(chosen, items, key, pool, chain, table)


class _Pool:
    """The personal pool best first: ``items``, combined ``score``, whether the session
    part beats the model part (``explained``) and the position of each item's strongest
    session entry (``best``; the lists of ``seeds`` start at ``starts``)."""

    __slots__ = ("best", "explained", "items", "score", "seeds", "starts")

    def __init__(
        self,
        items: np.ndarray,
        score: np.ndarray,
        explained: np.ndarray | None = None,
        best: np.ndarray | None = None,
        seeds: Sequence[Seed] = (),
        starts: Sequence[int] = (),
    ) -> None:
        self.items, self.score, self.explained, self.best = items, score, explained, best
        self.seeds, self.starts = seeds, starts

    def reasons(self, positions: list[int]) -> list[tuple[str, str]]:
        """(reason code, argument) of the pool items at ``positions``."""
        if self.explained is None or self.best is None or not positions:
            return [(FOR_YOU, "")] * len(positions)
        out = []
        flags, best = self.explained[positions].tolist(), self.best[positions].tolist()
        for flag, entry in zip(flags, best, strict=True):
            k = bisect_right(self.starts, entry) - 1 if flag else -1
            if k >= 0:
                seed = self.seeds[k]
                out.append((seed.reason_code, seed.item_id))
            else:
                out.append((FOR_YOU, ""))
        return out


def _personal(
    table: ItemTable,
    candidates: Candidates,
    seeds: tuple[Seed, ...],
    similar: Mapping[str, Candidates],
    now: float,
    config: RerankConfig,
) -> _Pool:
    """The personal pool: model candidates and the seeds' similar lists, one entry per item.

    Written for a few hundred entries per request: a handful of whole-array operations
    (one sort groups the entries by item) rather than per-item Python. An item a candidate
    list holds twice keeps its best model score; its similarity to recent activity sums over
    every list entry."""
    c_items = candidates.items
    n_cand = len(c_items)
    parts = [c_items]
    sim_scores: list[np.ndarray] = []
    used: list[Seed] = []
    starts: list[int] = []  # where each used seed's list starts in the pool
    end = n_cand
    for seed in seeds:
        sims = similar.get(seed.item_id)
        if sims is not None and len(sims.items):
            parts.append(sims.items)
            sim_scores.append(sims.scores)
            used.append(seed)
            starts.append(end)
            end += len(sims.items)
    if not end:
        return _Pool(np.empty(0, np.int64), np.empty(0))

    pool = np.concatenate(parts) if used else c_items
    model = np.zeros(end)  # per entry: the model part of the score ...
    session = np.zeros(end)  # ... and the session part
    if n_cand:
        model[:n_cand] = _normalise(candidates.scores)
        if config.model_weight != 1.0:
            model *= config.model_weight
    if used:
        # similarity to recent activity: each list scaled to its maximum, times the seed's
        # weight (an all-zero list: every item counts fully)
        sims_all = session[n_cand:]
        np.concatenate(sim_scores, out=sims_all, casting="same_kind")
        np.maximum(sims_all, 0.0, out=sims_all)
        local = [s - n_cand for s in starts]
        tops = np.maximum.reduceat(sims_all, local).tolist()
        factors = []
        for k, (seed, top) in enumerate(zip(used, tops, strict=True)):
            if top <= 0:
                sims_all[local[k] : (local[k + 1] if k + 1 < len(local) else None)] = 1.0
                top = 1.0
            factors.append(seed.weight / top)
        sims_all *= np.repeat(factors, np.diff([*local, end - n_cand]))

    # Group the entries by item, strongest session entry last in each group: one SIMD sort
    # of (item, quantised contribution, entry) keys (never a stable sort: its branches
    # mispredict on every new list, three times slower).
    shift = max(end - 1, 1).bit_length()
    q_bits = min(_CONTRIB_BITS, 62 - shift - max(table.n_items - 1, 1).bit_length())
    keys = pool.astype(np.int64)
    if used and q_bits > 0:
        top = max(seed.weight for seed in used)  # every list is scaled to 1 x its weight
        keys <<= q_bits
        keys |= (session * (((1 << q_bits) - 1) / top)).astype(np.int64)
    keys <<= shift
    keys |= np.arange(end)
    keys.sort()
    sorted_items = keys >> (shift + (q_bits if used and q_bits > 0 else 0))
    by = keys & ((1 << shift) - 1)  # entry positions, grouped by item
    last = np.empty(end, dtype=bool)
    last[-1] = True
    np.not_equal(sorted_items[1:], sorted_items[:-1], out=last[:-1])
    ends = np.flatnonzero(last)
    firsts = np.empty_like(ends)
    firsts[0] = 0
    np.add(ends[:-1], 1, out=firsts[1:])
    model = np.maximum.reduceat(model[by], firsts)  # an item listed twice: its best
    contrib = session
    session = np.add.reduceat(contrib[by], firsts)
    if config.session_weight != 1.0:
        session *= config.session_weight
    uniq = sorted_items[ends]  # ascending: ties in score go to the lower item index
    score = model + session
    _add_boosts(score, uniq, table, now, config)
    order = _best_first(score)
    if not used:
        return _Pool(uniq[order], score[order])
    return _Pool(uniq[order], score[order], (session > model)[order], by[ends][order], used, starts)


def _best_first(score: np.ndarray) -> np.ndarray:
    """Positions by descending score, ties in position order (a stable sort, but a fast
    unstable one first: ties are rare)."""
    order = np.argsort(-score)
    ranked = score[order]
    if (ranked[1:] == ranked[:-1]).any():
        order = np.argsort(-score, kind="stable")
    return order


def _add_boosts(
    score: np.ndarray, items: np.ndarray, table: ItemTable, now: float, config: RerankConfig
) -> None:
    """Add the new-arrival and promoted boosts of ``items`` to ``score`` (in place)."""
    if config.new_arrival_boost:
        new = rules.is_new_mask(items, table, now, config.new_arrival_days)
        score += config.new_arrival_boost * new
    if config.promoted and config.promoted_boost:
        promoted = rules.indices_of(table, config.promoted)
        score += config.promoted_boost * rules.member_mask(items, promoted)


def _allowed(
    items: np.ndarray,
    table: ItemTable,
    state: OnlineState,
    request: RerankRequest,
    config: RerankConfig,
) -> np.ndarray:
    """The rules: True where an item may be shown in this request."""
    keep = rules.in_stock_mask(items, table)
    if state.purchased:
        codes = rules.category_codes(table, config.repeatable_categories)
        keep &= ~rules.purchased_mask(items, table, state, codes)
    if state.cart and request.context in config.cart_excluded_contexts:
        keep &= ~rules.cart_mask(items, table, state)
    drop = list(request.exclude)
    if request.item_id:
        drop.append(request.item_id)  # never recommend the product on screen
    if drop:
        keep &= ~rules.member_mask(items, rules.indices_of(table, drop))
    if request.category or request.exclude_categories:
        include = (request.category,) if request.category else ()
        keep &= rules.category_mask(items, table, include, request.exclude_categories)
    if request.price_min is not None or request.price_max is not None:
        keep &= rules.price_mask(items, table, request.price_min, request.price_max)
    if request.context == "email" and state.email_sent:
        keep &= ~rules.email_capped_mask(
            items, table, state, request.now, config.email_cap_last, config.email_cap_days
        )
    return keep


def _diversify(
    order: np.ndarray,
    key: np.ndarray,
    items: np.ndarray,
    table: ItemTable,
    n: int,
    config: RerankConfig,
) -> np.ndarray:
    """Positions from ``order`` (best first) after the diversity rule."""
    if config.diversity == "mmr":
        cats = table.category[items[order]]
        return rules.mmr(order, key[order], cats, n, config.mmr_lambda)
    if config.diversity == "cap" and config.max_per_category > 0:
        head = order[: max(4 * n, 32)]  # enough in the usual case; else the whole list
        chosen = rules.per_category_cap(
            head, table.category[items[head]], n, config.max_per_category
        )
        if chosen.size < n and head.size < order.size:
            chosen = rules.per_category_cap(
                order, table.category[items[order]], n, config.max_per_category
            )
        return chosen
    return order[:n]


def _explain(
    chosen: np.ndarray,
    items: np.ndarray,
    key: np.ndarray,
    pool: _Pool,
    chain: list[tuple[np.ndarray, str, str]],
    table: ItemTable,
) -> list[RankedItem]:
    n_personal = pool.items.shape[0]
    bounds = np.cumsum([n_personal] + [c[0].size for c in chain]).tolist() if chain else []
    positions = chosen.tolist()
    ids = table.item_ids[items[chosen]].tolist()
    scores = np.round(key[chosen], 6).tolist()
    personal = iter(pool.reasons([p for p in positions if p < n_personal]))
    out: list[RankedItem] = []
    for pos, item_id, score in zip(positions, ids, scores, strict=True):
        if pos < n_personal:
            code, arg = next(personal)
        else:
            _, code, arg = chain[bisect_right(bounds, pos) - 1]
        out.append(RankedItem(str(item_id), score, reason_text(code, arg), code))
    return out
