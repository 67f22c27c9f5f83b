"""Compiled loops of the re-ranking hot path (numba), for a few hundred entries a request.

Each request merges the customer's ~100 model candidates with the similar lists of a few
session seeds (~50 each), scores the merged pool and picks the top ``n`` under the rules.
With numpy that is some sixty whole-array calls of a few microseconds each: most of a
request's CPU. Here each step is one compiled loop. The functions are pure and typed by
their arguments; ``serving.rerank`` owns the semantics and the tests hold both to them.

Compiled code is cached on disk (``cache=True``: ``__pycache__`` beside this file, or
``NUMBA_CACHE_DIR``); :func:`warm_up` compiles or loads it before the first request.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_jit = njit(cache=True, nogil=True, boundscheck=False)


@_jit
def _pooled(
    c_items: np.ndarray,  # int64 (n_cand,) model candidates, best first
    c_scores: np.ndarray,  # float64 (n_cand,) their model scores
    s_items: np.ndarray,  # int64 (m,) the seeds' similar lists, concatenated in seed order
    s_scores: np.ndarray,  # float64 (m,) their similarities
    s_starts: np.ndarray,  # int64 (n_seeds + 1,) where each seed's list starts; last = m
    s_weights: np.ndarray,  # float64 (n_seeds,) each seed's weight
    model_weight: float,
    session_weight: float,
    created_at: np.ndarray,  # float64 (n_items,) epoch seconds, NaN when unknown
    maybe_new: np.ndarray,  # uint8 bitmap: bit i set when item i may be new; empty: any may
    new_after: float,  # created at or after this -> a new arrival
    new_boost: float,  # added to new arrivals' scores (0: none)
    promoted: np.ndarray,  # int64 sorted item indices that get promoted_boost
    promoted_boost: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`personal_pool` before ordering: one entry per item, in order of first
    appearance (candidates, then the similar lists)."""
    n_cand = c_items.shape[0]
    m = s_items.shape[0]
    n = n_cand + m
    items = np.empty(n, np.int64)
    model = np.zeros(n)
    session = np.zeros(n)
    entry_seed = np.full(n, -1, np.int64)

    if n_cand:
        lo = hi = c_scores[0]
        for i in range(n_cand):
            v = c_scores[i]
            lo = min(lo, v)
            hi = max(hi, v)
        span = hi - lo
        for i in range(n_cand):
            items[i] = c_items[i]
            norm = (c_scores[i] - lo) / span if span > 0 else 1.0
            model[i] = norm * model_weight

    for k in range(s_weights.shape[0]):
        a, b = s_starts[k], s_starts[k + 1]
        top = 0.0
        for j in range(a, b):
            top = max(top, s_scores[j])
        factor = s_weights[k] / top if top > 0 else s_weights[k]
        for j in range(a, b):
            e = n_cand + j
            items[e] = s_items[j]
            entry_seed[e] = k
            session[e] = (max(s_scores[j], 0.0) if top > 0 else 1.0) * factor

    # group the entries by item, groups in order of first appearance, each item's entries
    # in list order: an open-addressing table of item -> group (no sort)
    size = 16
    while size < 2 * n:
        size <<= 1
    slots = np.full(size, -1, np.int64)
    uniq = np.empty(n, np.int64)
    best_model = np.empty(n)
    sum_session = np.empty(n)
    best_seed = np.empty(n, np.int64)
    strongest = np.empty(n)
    n_uniq = 0
    for e in range(n):
        item = items[e]
        h = ((item * 0x9E3779B1) >> 7) & (size - 1)
        while slots[h] >= 0 and uniq[slots[h]] != item:
            h = (h + 1) & (size - 1)
        g = slots[h]
        if g < 0:
            g = n_uniq
            n_uniq += 1
            slots[h] = g
            uniq[g] = item
            best_model[g] = model[e]
            sum_session[g] = session[e]
            best_seed[g] = entry_seed[e]
            strongest[g] = session[e]
        else:
            best_model[g] = max(best_model[g], model[e])
            sum_session[g] += session[e]
            if session[e] >= strongest[g]:  # ties: the later list
                strongest[g] = session[e]
                best_seed[g] = entry_seed[e]

    score = np.empty(n_uniq)
    seed = np.empty(n_uniq, np.int64)
    n_promoted = promoted.shape[0]
    n_bits = maybe_new.shape[0]
    for g in range(n_uniq):
        s = sum_session[g] * session_weight
        total = best_model[g] + s
        item = uniq[g]
        if (
            new_boost != 0.0
            and (n_bits == 0 or (maybe_new[item >> 3] >> (item & 7)) & 1)
            and created_at[item] >= new_after
        ):
            total += new_boost
        if n_promoted and promoted_boost != 0.0:
            at = np.searchsorted(promoted, item)
            if at < n_promoted and promoted[at] == item:
                total += promoted_boost
        score[g] = total
        seed[g] = best_seed[g] if s > best_model[g] else -1
    return uniq[:n_uniq], score, seed


@_jit
def personal_pool(
    c_items: np.ndarray,  # int64 (n_cand,) model candidates, best first
    c_scores: np.ndarray,  # float64 (n_cand,) their model scores
    s_items: np.ndarray,  # int64 (m,) the seeds' similar lists, concatenated in seed order
    s_scores: np.ndarray,  # float64 (m,) their similarities
    s_starts: np.ndarray,  # int64 (n_seeds + 1,) where each seed's list starts; last = m
    s_weights: np.ndarray,  # float64 (n_seeds,) each seed's weight
    model_weight: float,
    session_weight: float,
    created_at: np.ndarray,  # float64 (n_items,) epoch seconds, NaN when unknown
    maybe_new: np.ndarray,  # uint8 bitmap: bit i set when item i may be new; empty: any may
    new_after: float,  # created at or after this -> a new arrival
    new_boost: float,  # added to new arrivals' scores (0: none)
    promoted: np.ndarray,  # int64 sorted item indices that get promoted_boost
    promoted_boost: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The personal pool, one entry per item, best first.

    Returns ``(items, score, seed)``: ``score`` = model part + session part + boosts, where
    the model part is the item's best min-max normalised candidate score times
    ``model_weight`` and the session part is ``session_weight`` times the sum of its
    similarities, each list scaled to its own maximum (an all-zero list counts 1 per
    entry) times its seed's weight. ``seed[i]`` is the seed whose list gave item ``i`` its
    strongest similarity when the session part beats the model part, else -1 (the model
    explains it). Ties in score go to the lower item index."""
    items, score, seed = _pooled(
        c_items,
        c_scores,
        s_items,
        s_scores,
        s_starts,
        s_weights,
        model_weight,
        session_weight,
        created_at,
        maybe_new,
        new_after,
        new_boost,
        promoted,
        promoted_boost,
    )
    order = _best_first(score, items)
    return items[order], score[order], seed[order]


@_jit
def _best_first(score: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Positions by descending score, ties to the lower item (an unstable sort, then each
    run of equal scores put in item order: ties are rare)."""
    order = np.argsort(-score)
    i = 0
    size = order.shape[0]
    while i < size:
        j = i + 1
        while j < size and score[order[j]] == score[order[i]]:
            j += 1
        if j - i > 1:
            run = order[i:j].copy()
            order[i:j] = run[np.argsort(items[run])]
        i = j
    return order


@_jit
def _best_prefix(score: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """The first (at least) ``k`` positions of :func:`_best_first`'s order, without sorting
    the rest: every position scoring at least the k-th best score, in that order."""
    size = score.shape[0]
    if k >= size:
        return _best_first(score, items)
    neg = -score
    threshold = np.partition(neg, k - 1)[k - 1]
    top = np.nonzero(neg <= threshold)[0]
    return top[_best_first(score[top], items[top])]


@_jit
def pick(
    order: np.ndarray,  # int64 positions into items, best first
    items: np.ndarray,  # int64 item indices
    in_stock: np.ndarray,  # bool (n_items,)
    banned: np.ndarray,  # int64 sorted item indices never to show
    keep: np.ndarray,  # bool per position of items (the request's filters); empty: all
    categories: np.ndarray,  # int32 (n_items,) category code per item, -1 unknown
    n_codes: int,  # number of category codes
    n: int,  # at most this many
    cap: int,  # at most this many per category (<= 0: no cap; unknown: never capped)
    fill: bool,  # top a short list up with items the cap held back, best first
) -> np.ndarray:
    """Positions from ``order`` whose item may be shown: in stock, not banned, kept by the
    request's filters, within the per-category cap; up to ``n``, best first."""
    size = order.shape[0]
    n_banned = banned.shape[0]
    filtered = keep.shape[0] > 0
    taken = np.zeros(n_codes if cap > 0 else 0, np.int64)
    held = np.zeros(size, np.bool_)  # allowed, but over the cap
    out = np.empty(min(n, size), np.int64)
    m = 0
    for i in range(size):
        if m >= n:
            break
        pos = order[i]
        item = items[pos]
        if not in_stock[item] or (filtered and not keep[pos]):
            continue
        if n_banned:
            at = np.searchsorted(banned, item)
            if at < n_banned and banned[at] == item:
                continue
        if cap > 0:
            code = categories[item]
            if 0 <= code < n_codes:
                if taken[code] >= cap:
                    held[i] = True
                    continue
                taken[code] += 1
        out[m] = pos
        m += 1
    if fill:
        for i in range(size):
            if m >= n:
                break
            if held[i]:
                out[m] = order[i]
                m += 1
    return out[:m]


@_jit
def personal_top(
    c_items: np.ndarray,
    c_scores: np.ndarray,
    s_items: np.ndarray,
    s_scores: np.ndarray,
    s_starts: np.ndarray,
    s_weights: np.ndarray,
    model_weight: float,
    session_weight: float,
    created_at: np.ndarray,
    maybe_new: np.ndarray,
    new_after: float,
    new_boost: float,
    promoted: np.ndarray,
    promoted_boost: float,
    in_stock: np.ndarray,
    banned: np.ndarray,
    categories: np.ndarray,
    n_codes: int,
    n: int,
    cap: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`personal_pool` and, when the pool holds ``n`` items, :func:`pick` over it
    (no request filters, no top-up) in one call: the storefront's usual request. Returns
    the pool (items, score, seed) and the picked positions into it, best first (fewer than
    ``n`` when the pool or the rules fall short: the pool is then wholly best first). When
    ``n`` were picked, the pool is in no particular order: only its best few were ordered,
    to pick from (most requests are decided by the first dozens of a few hundred)."""
    items, score, seed = _pooled(
        c_items,
        c_scores,
        s_items,
        s_scores,
        s_starts,
        s_weights,
        model_weight,
        session_weight,
        created_at,
        maybe_new,
        new_after,
        new_boost,
        promoted,
        promoted_boost,
    )
    size = items.shape[0]
    if size < n:
        order = _best_first(score, items)
        return items[order], score[order], seed[order], np.empty(0, np.int64)
    keep = np.empty(0, np.bool_)  # no request filters
    order = _best_prefix(score, items, min(size, 4 * n + 16))
    if order.shape[0] < size:
        chosen = pick(order, items, in_stock, banned, keep, categories, n_codes, n, cap, False)
        if chosen.shape[0] >= n:
            return items, score, seed, chosen
        order = _best_first(score, items)  # the rules held too many back: order them all
    items, score, seed = items[order], score[order], seed[order]
    everything = np.arange(size)
    chosen = pick(everything, items, in_stock, banned, keep, categories, n_codes, n, cap, False)
    return items, score, seed, chosen


def warm_up() -> None:
    """Compile (or load from the cache) every kernel for the argument types the service
    passes, so no request pays for compilation."""
    items, scores = np.zeros(2, np.int64), np.ones(2)
    personal_pool(
        items,
        scores,
        items,
        scores,
        np.array([0, 2]),
        np.ones(1),
        1.0,
        1.0,
        np.zeros(1),
        np.zeros(0, np.uint8),
        0.0,
        0.0,
        np.zeros(0, np.int64),
        0.0,
    )
    codes, stock = np.zeros(1, np.int32), np.ones(1, np.bool_)
    pick(items, items, stock, items, np.ones(2, np.bool_), codes, 1, 2, 1, True)
    personal_top(
        items,
        scores,
        items,
        scores,
        np.array([0, 2]),
        np.ones(1),
        1.0,
        1.0,
        np.zeros(1),
        np.zeros(0, np.uint8),
        0.0,
        0.0,
        np.zeros(0, np.int64),
        0.0,
        stock,
        items,
        codes,
        1,
        2,
        1,
    )
