"""The re-ranking pipeline, compiled (numba): a customer's raw state in, ranked items out.

One request is one pass of these steps over the arrays of ``serving.core.arrays``:

1. **read**: the candidates payload, the cart, recent activity, purchases and email sends
   (``serving.store.rawcodec`` reads the store's bytes; ids are looked up in the version);
2. **seeds**: the product on screen, the cart (complements), recent activity weighted by
   event type and recency; one per item (its strongest offer), at most ``max_seeds``;
3. **pool**: model candidates and the seeds' similar lists, scored
   (``serving.kernels.personal_pool``: model + session similarity + boosts);
4. **keep**: what may not be shown (bought unless repeatable, the cart by context, the
   request's exclude list and item, email frequency cap) as a ban list, and the request's
   own filters (category, price range) with stock, per item;
5. **pick**: the best ``n`` the rules allow under the diversity rule (per-category cap or
   MMR); when the personal pool falls short, the cold-start chain (trending in the
   customer's category, popular, trending) fills the list;
6. the chosen items with their scores and reasons, for ``serving.core.writer``.

Every rule is here once; ``tests/serving/rerank_reference.py`` holds the same rules in plain
Python and numpy, and the tests compare the two on random requests.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from serving import kernels
from serving.core.arrays import ConfigArrays, RequestArrays, StateArrays, VersionArrays
from serving.store.codec import SEP_BYTE
from serving.store.rawcodec import (
    decode_ranked_compiled,
    each_line,
    find,
    id_less,
    lookup,
    parse_float,
)

_jit = njit(cache=True, nogil=True, boundscheck=False)

# reason codes (serving.core.writer writes their texts)
FOR_YOU, VIEWED, CART, ITEM, TREND_IN_CATEGORY, POPULAR, TRENDING = 0, 1, 2, 3, 4, 5, 6
# what a pass returns besides a list
NEED_LISTS = -3  # similar lists of ``need`` are not loaded yet: load them and run again
BAD_PAYLOAD = -4  # a candidates payload this code cannot read (a store bug, not input)
EMAIL = 3  # context code (serving.core.arrays.CONTEXT_CODE)


class Ranked:
    """(Documentation only) what :func:`rank` returns, as a tuple of arrays:
    ``(status, item, score, code, arg, need)``: ``status`` >= 0 is the number of items;
    ``code`` the reason code of each, ``arg`` its seed item (seed reasons), its category
    code (trending in category; -1: the request's category) or -1; ``need`` the items whose
    similar lists must be loaded (``status == NEED_LISTS``)."""


@_jit
def _intern(
    buf: np.ndarray, a: int, b: int, scratch: np.ndarray, starts: np.ndarray, n: np.ndarray
) -> int:
    """A code for an id the version does not know (-2, -3, ...: one per distinct id), so
    that unknown ids still count as seeds, as the reference's string ids do."""
    for k in range(n[0]):
        s = starts[k]
        if starts[k + 1] - s == b - a:
            same = True
            for j in range(b - a):
                if scratch[s + j] != buf[a + j]:
                    same = False
                    break
            if same:
                return -2 - k
    k = n[0]
    at = starts[k]
    for j in range(b - a):
        scratch[at + j] = buf[a + j]
    starts[k + 1] = at + b - a
    n[0] = k + 1
    return -2 - k


@_jit
def _event_weight(rec: np.ndarray, a: int, b: int, c: ConfigArrays) -> float:
    """The configured weight of the event type ``rec[a:b]`` (0: not configured)."""
    for t in range(c.event_weight.shape[0]):
        ea, eb = c.event_start[t], c.event_start[t + 1]
        if eb - ea == b - a:
            same = True
            for j in range(eb - ea):
                if c.event_names[ea + j] != rec[a + j]:
                    same = False
                    break
            if same:
                return c.event_weight[t]
    return 0.0


@_jit
def _cart_order(crt: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """The cart's entries in id order (bytewise = code-point order, as Python sorts str)."""
    n = lines.shape[0]
    order = np.arange(n)
    for i in range(1, n):  # insertion sort: carts are short
        j = i
        while j > 0:
            x, y = order[j], order[j - 1]
            ax, bx, ay, by = lines[x, 0], lines[x, 1], lines[y, 0], lines[y, 1]
            less = False
            decided = False
            for k in range(min(bx - ax, by - ay)):
                if crt[ax + k] != crt[ay + k]:
                    less = crt[ax + k] < crt[ay + k]
                    decided = True
                    break
            if not decided:
                less = bx - ax < by - ay
            if not less:
                break
            order[j], order[j - 1] = y, x
            j -= 1
    return order


@_jit
def _seeds(
    v: VersionArrays, c: ConfigArrays, r: RequestArrays, s: StateArrays
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Step 2: the seeds, strongest first: (item, weight, reason code), unknown items as
    negative codes; and the cart's known items (for the bans)."""
    rec = s.recent
    crt = s.cart
    prod = np.frombuffer(r.item_seed, np.uint8)
    rec_lines = each_line(rec)
    crt_lines = each_line(crt)
    size = 1 + crt_lines.shape[0] + rec_lines.shape[0]
    scratch = np.empty(prod.shape[0] + crt.shape[0] + rec.shape[0], np.uint8)
    starts = np.zeros(size + 1, np.int64)
    n_unk = np.zeros(1, np.int64)
    o_item = np.empty(size, np.int64)
    o_weight = np.empty(size)
    o_code = np.empty(size, np.int64)
    m = 0
    if prod.shape[0]:
        idx = lookup(prod, 0, prod.shape[0], v.ids, v.id_start, v.slots)
        if idx < 0:
            idx = _intern(prod, 0, prod.shape[0], scratch, starts, n_unk)
        weight = 1.0 if r.only_item_seed else c.product_seed_weight
        o_item[m], o_weight[m], o_code[m] = idx, weight, ITEM
        m += 1
    cart_known = np.empty(crt_lines.shape[0], np.int64)
    n_known = 0
    cart_weight = c.cart_context_seed_weight if r.context == 2 else c.cart_seed_weight
    for j in _cart_order(crt, crt_lines):
        a, b = crt_lines[j, 0], crt_lines[j, 1]
        idx = lookup(crt, a, b, v.ids, v.id_start, v.slots)
        if idx >= 0:
            cart_known[n_known] = idx
            n_known += 1
        elif not r.only_item_seed:
            idx = _intern(crt, a, b, scratch, starts, n_unk)
        if not r.only_item_seed:
            o_item[m], o_weight[m], o_code[m] = idx, cart_weight, CART
            m += 1
    if not r.only_item_seed:
        for line in range(rec_lines.shape[0]):
            a, b = rec_lines[line, 0], rec_lines[line, 1]
            s1 = find(rec, a, b, SEP_BYTE)  # ts SEP event type SEP item
            s2 = find(rec, s1 + 1, b, SEP_BYTE)
            if s2 >= b:
                continue  # not an activity entry
            ts = parse_float(rec, a, s1)
            if np.isnan(ts):
                continue
            idx = lookup(rec, s2 + 1, b, v.ids, v.id_start, v.slots)
            if idx < 0:
                idx = _intern(rec, s2 + 1, b, scratch, starts, n_unk)
            age = max(r.now - ts, 0.0)
            weight = _event_weight(rec, s1 + 1, s2, c) * 0.5 ** (age / c.half_life_s)
            o_item[m], o_weight[m], o_code[m] = idx, weight, VIEWED
            m += 1
    # one seed per item: its strongest positive offer (the first on a tie)
    u_item = np.empty(m, np.int64)
    u_weight = np.empty(m)
    u_code = np.empty(m, np.int64)
    k = 0
    for i in range(m):
        if not o_weight[i] > 0:
            continue
        found = -1
        for j in range(k):
            if u_item[j] == o_item[i]:
                found = j
                break
        if found < 0:
            u_item[k], u_weight[k], u_code[k] = o_item[i], o_weight[i], o_code[i]
            k += 1
        elif u_weight[found] < o_weight[i]:
            u_weight[found], u_code[found] = o_weight[i], o_code[i]
    # explicit seeds (similar items) are all kept; session seeds at most max_seeds
    limit = k if r.only_item_seed else max(c.max_seeds, 0)
    order = np.argsort(-u_weight[:k], kind="mergesort")[:limit]
    return u_item[order], u_weight[order], u_code[order], cart_known[:n_known]


@_jit
def _fallback_code(v: VersionArrays, r: RequestArrays, s: StateArrays) -> int:
    """The category whose trending list backs a thin answer: the product on screen's, else
    that of the most recent activity with a known item of a known category (-1: none)."""
    if r.item >= 0 and v.category[r.item] >= 0:
        return v.category[r.item]
    rec = s.recent
    lines = each_line(rec)
    for line in range(lines.shape[0]):
        a, b = lines[line, 0], lines[line, 1]
        s1 = find(rec, a, b, SEP_BYTE)
        s2 = find(rec, s1 + 1, b, SEP_BYTE)
        if s2 >= b:
            continue
        idx = lookup(rec, s2 + 1, b, v.ids, v.id_start, v.slots)
        if idx >= 0 and v.category[idx] >= 0:
            return v.category[idx]
    return -1


@_jit
def _bans(
    v: VersionArrays, c: ConfigArrays, r: RequestArrays, s: StateArrays, cart: np.ndarray
) -> np.ndarray:
    """Step 4: the sorted indices never to show: bought (unless repeatable), the cart (by
    context), the request's drops, items capped by email (email context)."""
    buy = s.bought
    buy_lines = each_line(buy)
    mail = s.mailed
    mail_lines = each_line(mail) if r.context == EMAIL else np.empty((0, 2), np.int64)
    n_mail = mail_lines.shape[0] // 2
    size = r.drop.shape[0] + cart.shape[0] + buy_lines.shape[0] + n_mail
    ban = np.empty(size, np.int64)
    nb = 0
    for i in range(r.drop.shape[0]):
        ban[nb] = r.drop[i]
        nb += 1
    if (c.cart_banned >> r.context) & 1:
        for j in range(cart.shape[0]):
            ban[nb] = cart[j]
            nb += 1
    for line in range(0, buy_lines.shape[0] - 1, 2):  # item, ts, item, ts, ...
        idx = lookup(buy, buy_lines[line, 0], buy_lines[line, 1], v.ids, v.id_start, v.slots)
        if idx < 0 or v.repeatable[idx]:
            continue
        again = False
        for q in range(v.repeatable_codes.shape[0]):
            if v.repeatable_codes[q] == v.category[idx]:
                again = True
                break
        if not again:
            ban[nb] = idx
            nb += 1
    if n_mail:
        nb = _email_capped(v, c, r, mail, mail_lines, ban, nb)
    return np.sort(ban[:nb])


@_jit
def _email_capped(
    v: VersionArrays,
    c: ConfigArrays,
    r: RequestArrays,
    mail: np.ndarray,
    lines: np.ndarray,
    ban: np.ndarray,
    nb: int,
) -> int:
    """Add the items sent in one of the last ``email_cap_last`` emails or within
    ``email_cap_s`` to ``ban`` (an email is one send time; a batch's items share it)."""
    n = lines.shape[0] // 2
    item = np.empty(n, np.int64)
    ts = np.empty(n)
    for e in range(n):  # member (item SEP ts), score
        a, b = lines[2 * e, 0], lines[2 * e, 1]
        cut = find(mail, a, b, SEP_BYTE)
        item[e] = lookup(mail, a, cut, v.ids, v.id_start, v.slots)
        ts[e] = parse_float(mail, lines[2 * e + 1, 0], lines[2 * e + 1, 1])
    cutoff = r.now - c.email_cap_s
    if c.email_cap_last > 0:
        sends = np.unique(ts[~np.isnan(ts)])[::-1]  # distinct send times, newest first
        if sends.shape[0]:
            cutoff = min(cutoff, sends[min(c.email_cap_last, sends.shape[0]) - 1])
    for e in range(n):
        if item[e] < 0:
            continue
        newest = -np.inf  # the item's latest send
        for f in range(n):
            if item[f] == item[e] and ts[f] > newest:
                newest = ts[f]
        if newest >= cutoff:
            ban[nb] = item[e]
            nb += 1
    return nb


@_jit
def _keep(v: VersionArrays, r: RequestArrays, items: np.ndarray) -> np.ndarray:
    """The request's own filters (category, price range) per position of ``items``; empty
    when it has none."""
    by_code = r.code_ok.shape[0] > 0
    low, high = r.price_min, r.price_max
    by_price = not (np.isnan(low) and np.isnan(high))
    if not by_code and not by_price:
        return np.empty(0, np.bool_)
    keep = np.ones(items.shape[0], np.bool_)
    n_codes = v.n_codes
    for p in range(items.shape[0]):
        item = items[p]
        if by_code:
            code = v.category[item]
            keep[p] = r.code_ok[code if code >= 0 else n_codes]
        if by_price:
            price = v.price[item]
            if not np.isnan(low) and not price >= low:
                keep[p] = False
            if not np.isnan(high) and not price <= high:
                keep[p] = False
    return keep


@_jit
def _mmr(order: np.ndarray, scores: np.ndarray, cats: np.ndarray, n: int, lam: float) -> np.ndarray:
    """Maximal marginal relevance: greedily ``argmax lam*score - (1-lam)*max_sim``, two items
    similar (1) when they share a known category; scores rescaled to [0, 1]."""
    size = order.shape[0]
    if size == 0 or n <= 0:
        return order[:0]
    lo, hi = scores.min(), scores.max()
    span = hi - lo
    rel = (scores - lo) / span if span > 0 else np.ones(size)
    penalty = np.zeros(size)
    free = np.ones(size, np.bool_)
    picked = np.empty(min(n, size), np.int64)
    for t in range(picked.shape[0]):
        best = -1
        best_value = -np.inf
        for i in range(size):
            if free[i]:
                value = lam * rel[i] - (1.0 - lam) * penalty[i]
                if best < 0 or value > best_value:
                    best, best_value = i, value
        picked[t] = best
        free[best] = False
        if cats[best] >= 0:
            for i in range(size):
                if cats[i] == cats[best]:
                    penalty[i] = 1.0
    return order[picked]


@_jit
def _pick(
    v: VersionArrays,
    c: ConfigArrays,
    r: RequestArrays,
    order: np.ndarray,
    items: np.ndarray,
    key: np.ndarray,
    banned: np.ndarray,
    fill: bool,
) -> np.ndarray:
    """Step 5: positions from ``order`` (best first) the rules allow, after the diversity
    rule, at most ``n``; with ``fill``, items the cap held back top up a short list."""
    keep = _keep(v, r, items)
    if c.diversity == 2:
        allowed = kernels.pick(
            order, items, v.in_stock, banned, keep, v.category, v.n_codes, order.size, 0, False
        )
        cats = np.empty(allowed.shape[0], np.int64)
        for i in range(allowed.shape[0]):
            cats[i] = v.category[items[allowed[i]]]
        return _mmr(allowed, key[allowed], cats, r.n, c.mmr_lambda)
    return kernels.pick(
        order, items, v.in_stock, banned, keep, v.category, v.n_codes, r.n, c.cap, fill
    )


@_jit
def rank(
    v: VersionArrays, c: ConfigArrays, r: RequestArrays, s: StateArrays
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One request, steps 1-6: see :class:`Ranked` for what it returns."""
    none_i = np.empty(0, np.int64)
    none_f = np.empty(0)
    if r.n <= 0:
        return 0, none_i, none_f, none_i, none_i, none_i
    n_items = v.sim_len.shape[0]
    c_items, c_scores = decode_ranked_compiled(s.candidates)
    for i in range(c_items.shape[0]):
        if c_items[i] < 0 or c_items[i] >= n_items:
            return BAD_PAYLOAD, none_i, none_f, none_i, none_i, none_i
    seed_item, seed_weight, seed_code, cart = _seeds(v, c, r, s)

    # the seeds' similar lists (those not loaded yet: the caller loads them first)
    n_need = 0
    total = 0
    n_used = 0
    for j in range(seed_item.shape[0]):
        idx = seed_item[j]
        if idx >= 0:
            length = v.sim_len[idx]
            if length < 0:
                n_need += 1
            elif length > 0:
                total += length
                n_used += 1
    if n_need:
        need = np.empty(n_need, np.int64)
        q = 0
        for j in range(seed_item.shape[0]):
            if seed_item[j] >= 0 and v.sim_len[seed_item[j]] < 0:
                need[q] = seed_item[j]
                q += 1
        return NEED_LISTS, none_i, none_f, none_i, none_i, need
    s_items = np.empty(total, np.int64)
    s_scores = np.empty(total)
    s_starts = np.zeros(n_used + 1, np.int64)
    used_item = np.empty(n_used, np.int64)
    used_weight = np.empty(n_used)
    used_code = np.empty(n_used, np.int64)
    u = 0
    at = 0
    for j in range(seed_item.shape[0]):
        idx = seed_item[j]
        if idx < 0 or v.sim_len[idx] <= 0:
            continue
        length = v.sim_len[idx]
        for e in range(length):
            s_items[at + e] = v.sim_items[idx, e]
            s_scores[at + e] = v.sim_scores[idx, e]
        at += length
        s_starts[u + 1] = at
        used_item[u], used_weight[u], used_code[u] = idx, seed_weight[j], seed_code[j]
        u += 1

    banned = _bans(v, c, r, s, cart)
    filtered = r.code_ok.shape[0] > 0 or not (np.isnan(r.price_min) and np.isnan(r.price_max))
    fused = c.diversity != 2 and not filtered
    new_after = r.now - c.new_arrival_s
    if c_items.shape[0] == 0 and n_used == 0:
        p_items, p_score, p_seed, chosen = none_i, none_f, none_i, none_i
    elif fused:
        p_items, p_score, p_seed, chosen = kernels.personal_top(
            c_items, c_scores, s_items, s_scores, s_starts, used_weight,
            c.model_weight, c.session_weight, v.created_at, r.maybe_new, new_after,
            c.new_arrival_boost, v.promoted, c.promoted_boost,
            v.in_stock, banned, v.category, v.n_codes, r.n, c.cap,
        )  # fmt: skip
    else:
        p_items, p_score, p_seed = kernels.personal_pool(
            c_items, c_scores, s_items, s_scores, s_starts, used_weight,
            c.model_weight, c.session_weight, v.created_at, r.maybe_new, new_after,
            c.new_arrival_boost, v.promoted, c.promoted_boost,
        )  # fmt: skip
        chosen = none_i
    n_personal = p_items.shape[0]
    p_key = 1.0 + np.maximum(p_score, 0.0)  # every personal item above the fallback lists
    if not fused and n_personal >= r.n:
        chosen = _pick(v, c, r, np.arange(n_personal), p_items, p_key, banned, False)
    if chosen.shape[0] >= r.n:
        return _explained(chosen, p_items, p_key, p_seed, used_item, used_code, none_i, none_i)

    # the cold-start chain: trending in the customer's category, popular, trending
    chain_list = np.empty(3, np.int64)  # list id (-1: the request's category list)
    chain_code = np.empty(3, np.int64)
    chain_arg = np.empty(3, np.int64)
    stages = 0
    if r.trend_given:
        if r.trend_items.shape[0]:
            chain_list[0], chain_code[0], chain_arg[0] = -1, TREND_IN_CATEGORY, -1
            stages = 1
    else:
        code = _fallback_code(v, r, s)
        if code >= 0 and v.trend_list[code] >= 0:
            chain_list[0], chain_code[0] = v.trend_list[code], TREND_IN_CATEGORY
            chain_arg[0] = v.trend_arg[code]
            stages = 1
    for lid, rc in ((0, POPULAR), (1, TRENDING)):
        if v.list_start[lid + 1] > v.list_start[lid]:
            chain_list[stages], chain_code[stages], chain_arg[stages] = lid, rc, -1
            stages += 1
    total = n_personal
    for st in range(stages):
        lid = chain_list[st]
        total += r.trend_items.shape[0] if lid < 0 else v.list_start[lid + 1] - v.list_start[lid]
    items = np.empty(total, np.int64)
    key = np.empty(total)
    bounds = np.empty(stages + 1, np.int64)  # where each stage starts in ``items``
    items[:n_personal] = p_items
    key[:n_personal] = p_key
    at = n_personal
    for st in range(stages):
        lid = chain_list[st]
        own = lid < 0  # the request's category list, else one of the version's
        size = r.trend_items.shape[0] if own else v.list_start[lid + 1] - v.list_start[lid]
        base = 0 if own else v.list_start[lid]
        bounds[st] = at
        for p in range(size):  # (stage order, then list position) mapped into (0, 1)
            items[at + p] = r.trend_items[p] if own else v.lists[base + p]
            key[at + p] = (stages - st - 1 + (size - p) / (size + 1.0)) / stages
        at += size
    bounds[stages] = at
    # one entry per item: its first (the personal pool, then the chain in order)
    first = np.ones(total, np.bool_)
    seen = np.zeros(n_items, np.bool_)
    for p in range(total):
        if seen[items[p]]:
            first[p] = False
        seen[items[p]] = True
    keep_pos = np.nonzero(first)[0]
    order = keep_pos[np.argsort(-key[keep_pos], kind="mergesort")]
    chosen = _pick(v, c, r, order, items, key, banned, True)
    codes = np.empty(chosen.shape[0], np.int64)
    args = np.empty(chosen.shape[0], np.int64)
    for i in range(chosen.shape[0]):
        pos = chosen[i]
        codes[i], args[i] = -1, -1
        if pos >= n_personal:
            st = 0
            while bounds[st + 1] <= pos:
                st += 1
            codes[i], args[i] = chain_code[st], chain_arg[st]
    return _explained(chosen, items, key, p_seed, used_item, used_code, codes, args)


@_jit
def _explained(
    chosen: np.ndarray,
    items: np.ndarray,
    key: np.ndarray,
    p_seed: np.ndarray,
    used_item: np.ndarray,
    used_code: np.ndarray,
    chain_codes: np.ndarray,
    chain_args: np.ndarray,
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Step 6: the chosen items, scores and reasons (a personal item's reason is the seed
    whose list explains it, else the model: for you)."""
    m = chosen.shape[0]
    item = np.empty(m, np.int64)
    score = np.empty(m)
    code = np.empty(m, np.int64)
    arg = np.full(m, -1, np.int64)
    n_personal = p_seed.shape[0]
    for i in range(m):
        pos = chosen[i]
        item[i] = items[pos]
        score[i] = key[pos]
        if chain_codes.shape[0] and chain_codes[i] >= 0:
            code[i], arg[i] = chain_codes[i], chain_args[i]
        elif pos < n_personal and p_seed[pos] >= 0:
            k = p_seed[pos]
            code[i], arg[i] = used_code[k], used_item[k]
        else:
            code[i] = FOR_YOU
    return m, item, score, code, arg, np.empty(0, np.int64)


__all__ = ["BAD_PAYLOAD", "NEED_LISTS", "id_less", "rank"]
