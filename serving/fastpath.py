"""The storefront's usual request in one compiled call: raw Redis replies in, JSON out.

A recommendation request spends most of its CPU between the Redis read and the response
in many small Python steps (decode the online state into objects, derive session seeds,
gather similar lists, ban, pool, pick, explain, build dicts, serialise), each cheap alone
but together more than the web framework itself. For the common case this module does
all of it in one numba call over the raw replies and per-version arrays:

* the customer's candidates (decoded by ``serving.store.codec``), the recent-activity, cart and
  purchase replies as they come from Redis, joined with newlines (the entries use the
  store's encoding, ``serving.store.codec.SEP``; ids never contain control characters such as
  newline or SEP: ``features.ids``), ids compared as UTF-8 bytes;
* a :class:`CompiledVersion`: the version's item ids in a hash table, their JSON-escaped
  bytes, its similar lists as a dense matrix and the item columns the rules read.

It answers exactly what :func:`serving.rerank.rerank` answers (the tests hold the two to
each other on random and edge-case requests) or returns ``None`` and the caller takes the
general path: email context, request filters (category, price), MMR diversity, an item in
the state that the version does not know, or a personal pool the rules leave short of
``n`` (the cold-start chain). Scores are written as ``round(score, 6)`` like the general
path's JSON (computed as round(score * 1e6) / 1e6, which can differ from Python's
correctly rounded ``round`` in the last digit on an exact tie). Activity timestamps are
parsed here too; with 16-17 significant digits (``repr`` of ``time.time()``) the parse
can be one unit in the last place off Python's ``float()``: a difference of about 1e-16 in
a seed's recency weight.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import orjson
from numba import njit

from serving import kernels, rules
from serving.rerank import (
    FOR_YOU,
    SIMILAR_TO_CART,
    SIMILAR_TO_ITEM,
    SIMILAR_TO_VIEWED,
    RerankConfig,
    RerankRequest,
    category_cap,
    fused_pick,
    promoted_items,
    reason_text,
)
from serving.store.codec import SEP_BYTE, decode_ranked_compiled
from serving.types import Candidates, ItemTable

_jit = njit(cache=True, nogil=True, boundscheck=False)
# helpers called many times per request are inlined into the caller: a call between
# compiled functions passing arrays pays reference counting on each of them
_inline = njit(cache=True, nogil=True, boundscheck=False, inline="always")

_SEP = SEP_BYTE
_NL = ord("\n")
# reason codes inside the kernel (also the seed codes)
_FOR_YOU, _VIEWED, _CART, _ITEM = 0, 1, 2, 3
_CONTEXT_CODE = {"home": 0, "product": 1, "cart": 2}

_CODES = (FOR_YOU, SIMILAR_TO_VIEWED, SIMILAR_TO_CART, SIMILAR_TO_ITEM)  # by kernel code


def _reason_parts(code: str) -> list[bytes]:
    """The reason sentence of ``code`` before and after the seed's id (serving.rerank)."""
    before, _, after = reason_text(code, "\0").partition("\0")
    return [before.encode(), after.encode()]


_JSON_PARTS = [
    b'{"item_id":"',  # 0
    b'","score":',  # 1
    b',"reason":"',  # 2
    b'","reason_code":"',  # 3
    b'"}',  # 4
    reason_text(FOR_YOU, "").encode(),  # 5
    *_reason_parts(SIMILAR_TO_VIEWED),  # 6, 7
    *_reason_parts(SIMILAR_TO_CART),  # 8, 9
    *_reason_parts(SIMILAR_TO_ITEM),  # 10, 11
    *(code.encode() for code in _CODES),  # 12 + kernel code
]


def _packed(strings: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """``strings`` concatenated (uint8; never empty) and where each starts (int64, one
    more entry than strings: the last is the end)."""
    starts = np.zeros(len(strings) + 1, np.int64)
    np.cumsum([len(x) for x in strings], out=starts[1:])
    return np.frombuffer(b"".join(strings) or b"\0", np.uint8).copy(), starts


_PARTS, _PART_START = _packed(_JSON_PARTS)


class CompiledVersion(NamedTuple):
    """One version's arrays for :func:`answer` (built once per version by the API)."""

    version: str
    ids: np.ndarray  # uint8: the raw (UTF-8) item ids, concatenated
    id_start: np.ndarray  # int64 (n_items + 1,)
    slots: np.ndarray  # int64 open-addressing table: hash -> item index (-1: empty)
    esc: np.ndarray  # uint8: the JSON-escaped ids, concatenated
    esc_start: np.ndarray  # int64 (n_items + 1,)
    sim_items: np.ndarray  # int32 (n_items, k): each item's similar items, best first
    sim_scores: np.ndarray  # float32 (n_items, k)
    sim_len: np.ndarray  # int32 (n_items,): entries used in each row
    created_at: np.ndarray  # float64
    maybe_new: np.ndarray  # uint8 bitmap (little bit order): items new at ``built_at``
    built_at: float  # epoch seconds: later requests' new arrivals all have their bit set
    in_stock: np.ndarray  # bool
    category: np.ndarray  # int32
    n_codes: int
    repeatable: np.ndarray  # bool
    repeatable_codes: np.ndarray  # int32 sorted: the config's repeatable categories
    promoted: np.ndarray  # int64 sorted: the config's promoted items


class CompiledConfig(NamedTuple):
    """The re-ranking config as the kernel reads it."""

    params: np.ndarray  # float64, see :func:`compile_config`
    event_names: np.ndarray  # uint8 concatenated event types
    event_start: np.ndarray  # int64
    event_weight: np.ndarray  # float64
    max_seeds: int
    cart_banned: int  # bit per context code: the cart is banned there
    cap: int  # per-category cap (0: none)


def compile_config(config: RerankConfig) -> CompiledConfig:
    event_names, event_start = _packed([t.encode() for t in config.event_weights])
    return CompiledConfig(
        params=np.array(
            [
                config.model_weight,
                config.session_weight,
                max(config.session_half_life_s, 1e-9),
                config.cart_seed_weight,
                config.cart_context_seed_weight,
                config.product_seed_weight,
                config.new_arrival_days * rules.DAY,
                config.new_arrival_boost,
                config.promoted_boost,
            ],
            dtype=np.float64,
        ),
        event_names=event_names,
        event_start=event_start,
        event_weight=np.array([config.event_weights[t] for t in config.event_weights], float),
        max_seeds=int(config.max_seeds),
        cart_banned=sum(
            1 << code for ctx, code in _CONTEXT_CODE.items() if ctx in config.cart_excluded_contexts
        ),
        cap=category_cap(config),
    )


def compile_version(
    table: ItemTable,
    similar: Mapping[str, Candidates],
    config: RerankConfig,
    built_at: float | None = None,
) -> CompiledVersion | None:
    """The arrays of ``table``'s version; None unless every item's similar list is in
    ``similar`` (the API compiles a version once its similar lists are all loaded).
    ``built_at`` (default: now) dates the "may be new" bitmap: requests from then on
    look up ``created_at`` only for the items it marks (few, and all the new arrivals)."""
    n = table.n_items
    ids = table.item_ids.tolist()
    lists = [similar.get(i) for i in ids]
    if any(c is None for c in lists) or len(table.index) != n:
        return None  # (a repeated id: the general path's index keeps its last row)
    raw = [str(i).encode() for i in ids]
    built_at = time.time() if built_at is None else built_at
    created_at = table.created_at.astype(np.float64, copy=False)
    esc = [orjson.dumps(str(i))[1:-1] for i in ids]
    k = max((len(c) for c in lists if c is not None), default=0)
    sim_items = np.zeros((n, max(k, 1)), np.int32)
    sim_scores = np.zeros((n, max(k, 1)), np.float32)
    sim_len = np.zeros(n, np.int32)
    for row, c in enumerate(lists):
        assert c is not None
        m = len(c)
        sim_items[row, :m] = c.items
        sim_scores[row, :m] = c.scores
        sim_len[row] = m
    ids_arr, id_start = _packed(raw)
    esc_arr, esc_start = (ids_arr, id_start) if esc == raw else _packed(esc)
    return CompiledVersion(
        version=table.version,
        ids=ids_arr,
        id_start=id_start,
        slots=_build_slots(ids_arr, id_start),
        esc=esc_arr,
        esc_start=esc_start,
        sim_items=sim_items,
        sim_scores=sim_scores,
        sim_len=sim_len,
        created_at=created_at,
        maybe_new=np.packbits(
            created_at >= built_at - config.new_arrival_days * rules.DAY, bitorder="little"
        ),
        built_at=built_at,
        in_stock=table.in_stock,
        category=table.category,
        n_codes=len(table.categories),
        repeatable=table.repeatable,
        repeatable_codes=np.sort(rules.category_codes(table, config.repeatable_categories)),
        promoted=promoted_items(table, config),
    )


def similar_views(compiled: CompiledVersion, item_ids: Sequence[str]) -> dict[str, Candidates]:
    """Every item's similar list as views on the compiled matrix (``item_ids`` in index
    order): the general path's cache then shares the matrix's memory."""
    items, scores = compiled.sim_items, compiled.sim_scores
    return {
        name: Candidates(items[row, :length], scores[row, :length])
        for row, (name, length) in enumerate(zip(item_ids, compiled.sim_len.tolist(), strict=True))
    }


def eligible(request: RerankRequest, config: RerankConfig) -> bool:
    """Whether :func:`answer` may take ``request`` (else the general path does): a
    storefront context and a request the general path also answers with one fused pick."""
    return request.context in _CONTEXT_CODE and request.n > 0 and fused_pick(request, config)


def answer(
    compiled: CompiledVersion,
    config: CompiledConfig,
    request: RerankRequest,
    candidates: bytes | None,
    recent: Sequence[bytes],
    cart: Sequence[bytes],
    bought: Sequence[bytes],
    index: Mapping[str, int],
) -> bytes | None:
    """The JSON array of the answer's items, or None: take the general path.

    ``candidates`` is the raw candidates payload, ``recent``/``cart``/``bought`` the raw
    replies of the customer's recent activity, cart and purchases (flat item, ts pairs);
    ``index`` the version's item index (for the request's own ids)."""
    product = -1
    drop: list[int] = []
    if request.item_id:
        found = index.get(request.item_id)
        if found is None:
            return None
        product = found
        drop.append(found)
    for item in request.exclude:
        found = index.get(item)
        if found is not None:
            drop.append(found)
    args = (
        candidates or b"",
        b"\n".join(recent),
        b"\n".join(cart),
        b"\n".join(bought),
        np.array(sorted(drop), np.int64) if drop else _NONE,
        product if request.context == "product" else -1,
        _CONTEXT_CODE[request.context],
        float(request.now),
        int(request.n),
        compiled.ids,
        compiled.id_start,
        compiled.slots,
        compiled.esc,
        compiled.esc_start,
        compiled.created_at,
        compiled.maybe_new if request.now >= compiled.built_at else _NO_BITS,
        compiled.in_stock,
        compiled.category,
        compiled.n_codes,
        compiled.repeatable,
        compiled.repeatable_codes,
        compiled.promoted,
        compiled.sim_items,
        compiled.sim_scores,
        compiled.sim_len,
        config.params,
        config.event_names,
        config.event_start,
        config.event_weight,
        config.max_seeds,
        config.cart_banned,
        config.cap,
        _PARTS,
        _PART_START,
    )
    out = _buffer()
    length = _answer(*args, out)
    while length == _TOO_SMALL:  # many items with long ids: a bigger buffer
        out = _buffers.out = np.empty(4 * out.shape[0], np.uint8)
        length = _answer(*args, out)
    return out[:length].tobytes() if length >= 0 else None


_buffers = threading.local()
_TOO_SMALL = -2


def _buffer() -> np.ndarray:
    """This thread's output buffer (reused: the answer is copied out of it)."""
    out: np.ndarray | None = getattr(_buffers, "out", None)
    if out is None:
        out = _buffers.out = np.empty(1 << 16, np.uint8)
    return out


_NONE = np.empty(0, np.int64)
_NO_BITS = np.empty(0, np.uint8)


# ---- compiled parts ----------------------------------------------------------------------


@_inline
def _hash(buf: np.ndarray, a: int, b: int) -> int:
    """FNV-1a of ``buf[a:b]``."""
    h = np.uint64(14695981039346656037)
    for i in range(a, b):
        h = (h ^ np.uint64(buf[i])) * np.uint64(1099511628211)
    return int(h >> np.uint64(1))


@_jit
def _build_slots(ids: np.ndarray, start: np.ndarray) -> np.ndarray:
    n = start.shape[0] - 1
    size = 16
    while size < 2 * n:
        size <<= 1
    slots = np.full(size, -1, np.int64)
    for i in range(n):
        h = _hash(ids, start[i], start[i + 1]) & (size - 1)
        while slots[h] >= 0:
            h = (h + 1) & (size - 1)
        slots[h] = i
    return slots


@_inline
def _lookup(
    buf: np.ndarray, a: int, b: int, ids: np.ndarray, start: np.ndarray, slots: np.ndarray
) -> int:
    """Index of the item whose id is ``buf[a:b]``; -1 when unknown."""
    size = slots.shape[0]
    h = _hash(buf, a, b) & (size - 1)
    length = b - a
    while True:
        i = slots[h]
        if i < 0:
            return -1
        s = start[i]
        if start[i + 1] - s == length:
            same = True
            for j in range(length):
                if ids[s + j] != buf[a + j]:
                    same = False
                    break
            if same:
                return i
        h = (h + 1) & (size - 1)


@_inline
def _parse_float(buf: np.ndarray, a: int, b: int) -> float:
    """The decimal number ``buf[a:b]`` (sign, digits, point, exponent) exactly as Python's
    ``float()`` reads it, when that takes one rounding: at most 2**53 as an integer
    mantissa and a power of ten up to 22 (the store writes timestamps with 6 decimals:
    16 digits until the year 2255). NaN otherwise, or when it is not a number."""
    i = a
    negative = False
    if i < b and (buf[i] == 45 or buf[i] == 43):  # - +
        negative = buf[i] == 45
        i += 1
    mant = 0
    digits = 0
    scale = 0
    while i < b and 48 <= buf[i] <= 57:
        mant = mant * 10 + (buf[i] - 48)
        digits += 1
        i += 1
    if i < b and buf[i] == 46:  # .
        i += 1
        while i < b and 48 <= buf[i] <= 57:
            mant = mant * 10 + (buf[i] - 48)
            digits += 1
            scale -= 1
            i += 1
    if digits == 0 or digits > 18:  # (more than 18 digits could overflow the mantissa)
        return np.nan
    if i < b and (buf[i] == 101 or buf[i] == 69):  # e E
        i += 1
        e_negative = False
        if i < b and (buf[i] == 45 or buf[i] == 43):
            e_negative = buf[i] == 45
            i += 1
        e = 0
        e_digits = 0
        while i < b and 48 <= buf[i] <= 57 and e_digits < 4:
            e = e * 10 + (buf[i] - 48)
            e_digits += 1
            i += 1
        if e_digits == 0:
            return np.nan
        scale += -e if e_negative else e
    if i != b or mant > 2**53 or scale > 22 or scale < -22:
        return np.nan
    value = float(mant) * _POW10[scale] if scale >= 0 else float(mant) / _POW10[-scale]
    return -value if negative else value


_POW10 = np.array([10.0**k for k in range(23)])  # exact: every 10**k up to 1e22 is a double


@_inline
def _id_less(ids: np.ndarray, start: np.ndarray, x: int, y: int) -> bool:
    """Item ``x``'s id sorts before item ``y``'s (bytewise: code-point order)."""
    a, b = start[x], start[y]
    la, lb = start[x + 1] - a, start[y + 1] - b
    for j in range(min(la, lb)):
        if ids[a + j] != ids[b + j]:
            return ids[a + j] < ids[b + j]
    return la < lb


@_inline
def _put(out: np.ndarray, at: int, src: np.ndarray, a: int, b: int) -> int:
    for j in range(a, b):
        out[at] = src[j]
        at += 1
    return at


@_inline
def _put_score(out: np.ndarray, at: int, value: float) -> int:
    """``value`` rounded to 6 decimals as Python's repr writes it ("2.0", "3.1988")."""
    scaled = np.int64(np.round(value * 1e6))
    whole = scaled // 1000000
    frac = scaled % 1000000
    digits = np.empty(20, np.uint8)
    k = 0
    if whole == 0:
        digits[0] = 48
        k = 1
    while whole > 0:
        digits[k] = 48 + whole % 10
        whole //= 10
        k += 1
    for j in range(k - 1, -1, -1):
        out[at] = digits[j]
        at += 1
    out[at] = 46
    at += 1
    width = 6
    while width > 1 and frac % 10 == 0:
        frac //= 10
        width -= 1
    for j in range(width - 1, -1, -1):
        out[at + j] = 48 + frac % 10
        frac //= 10
    return at + width


@_jit
def _answer(
    candidates: bytes,  # the encoded candidates (serving.store), empty: none
    recent: bytes,
    cart: bytes,
    bought: bytes,
    drop: np.ndarray,  # int64 sorted: the request's exclude list and the product on screen
    product: int,  # the product on screen (context=product), else -1
    context: int,  # 0 home, 1 product, 2 cart
    now: float,
    n: int,
    ids: np.ndarray,
    id_start: np.ndarray,
    slots: np.ndarray,
    esc: np.ndarray,
    esc_start: np.ndarray,
    created_at: np.ndarray,
    maybe_new: np.ndarray,
    in_stock: np.ndarray,
    category: np.ndarray,
    n_codes: int,
    repeatable: np.ndarray,
    repeatable_codes: np.ndarray,
    promoted: np.ndarray,
    sim_items: np.ndarray,
    sim_scores: np.ndarray,
    sim_len: np.ndarray,
    params: np.ndarray,
    event_names: np.ndarray,
    event_start: np.ndarray,
    event_weight: np.ndarray,
    max_seeds: int,
    cart_banned: int,
    cap: int,
    parts: np.ndarray,
    part_start: np.ndarray,
    out: np.ndarray,  # uint8: the JSON is written here
) -> int:
    """:func:`answer`'s work: the length of the JSON written to ``out``; -1: take the
    general path; -2 (``_TOO_SMALL``): ``out`` cannot hold it."""
    fail = -1
    c_items, c_scores = decode_ranked_compiled(np.frombuffer(candidates, np.uint8))
    if c_items.shape[0] and c_items[0] < 0:
        return fail  # not a payload this code knows
    cart_idx = _cart(np.frombuffer(cart, np.uint8), ids, id_start, slots)
    if cart_idx.shape[0] and cart_idx[0] < 0:
        return fail  # an item this version does not know
    o_item, o_weight, o_code = _offers(
        np.frombuffer(recent, np.uint8),
        cart_idx,
        product,
        context,
        now,
        ids,
        id_start,
        slots,
        params,
        event_names,
        event_start,
        event_weight,
    )
    if o_item.shape[0] and o_item[0] < 0:
        return fail  # an item this version does not know, or not an entry of the store's
    u_item, u_weight, u_code = _strongest(o_item, o_weight, o_code, max_seeds)
    s_items, s_scores, s_starts, seed_item = _gather(u_item, sim_items, sim_scores, sim_len)
    used = np.nonzero(sim_len[u_item] > 0)[0]
    if c_items.shape[0] == 0 and used.shape[0] == 0:
        return fail  # nothing personal: the cold-start chain
    banned = _bans(
        drop,
        cart_idx if (cart_banned >> context) & 1 else cart_idx[:0],
        np.frombuffer(bought, np.uint8),
        ids,
        id_start,
        slots,
        repeatable,
        repeatable_codes,
        category,
    )
    p_items, p_score, p_seed, chosen = kernels.personal_top(
        c_items,
        c_scores,
        s_items,
        s_scores,
        s_starts,
        u_weight[used],
        params[0],
        params[1],
        created_at,
        maybe_new,
        now - params[6],
        params[7],
        promoted,
        params[8],
        in_stock,
        banned,
        category,
        n_codes,
        n,
        cap,
    )
    if chosen.shape[0] < n:
        return fail  # the cold-start chain tops it up: the general path
    return _write(
        out,
        chosen,
        p_items,
        p_score,
        p_seed,
        seed_item,
        u_code[used],
        esc,
        esc_start,
        parts,
        part_start,
    )


@_inline
def _each_line(buf: np.ndarray) -> np.ndarray:
    """Where each newline-separated entry of ``buf`` starts and ends: (n, 2) int64."""
    n = 1 if buf.shape[0] else 0
    for i in range(buf.shape[0]):
        if buf[i] == _NL:
            n += 1
    bounds = np.empty((n, 2), np.int64)
    a = 0
    for k in range(n):
        b = a
        while b < buf.shape[0] and buf[b] != _NL:
            b += 1
        bounds[k, 0], bounds[k, 1] = a, b
        a = b + 1
    return bounds


@_inline
def _cart(crt: np.ndarray, ids: np.ndarray, id_start: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """The cart's item indices in id order (the general path sorts the cart by id); [-1]
    when an item is unknown."""
    lines = _each_line(crt)
    cart_idx = np.empty(lines.shape[0], np.int64)
    for n_cart in range(lines.shape[0]):
        idx = _lookup(crt, lines[n_cart, 0], lines[n_cart, 1], ids, id_start, slots)
        if idx < 0:
            return np.full(1, -1, np.int64)
        j = n_cart  # insertion into id order
        while j > 0 and _id_less(ids, id_start, idx, cart_idx[j - 1]):
            cart_idx[j] = cart_idx[j - 1]
            j -= 1
        cart_idx[j] = idx
    return cart_idx


@_inline
def _offers(
    rec: np.ndarray,
    cart_idx: np.ndarray,
    product: int,
    context: int,
    now: float,
    ids: np.ndarray,
    id_start: np.ndarray,
    slots: np.ndarray,
    params: np.ndarray,
    event_names: np.ndarray,
    event_start: np.ndarray,
    event_weight: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seed offers (item, weight, code) as :func:`serving.rerank.session_seeds` makes them:
    the product on screen, the cart, then recent activity weighted by event type and
    recency. Item [-1] when an entry is malformed or its item unknown."""
    lines = _each_line(rec)
    size = 1 + cart_idx.shape[0] + lines.shape[0]
    o_item = np.empty(size, np.int64)
    o_weight = np.empty(size)
    o_code = np.empty(size, np.int64)
    fail = (np.full(1, -1, np.int64), o_weight[:1], o_code[:1])
    m = 0
    if product >= 0:
        o_item[m], o_weight[m], o_code[m] = product, params[5], _ITEM
        m += 1
    cart_weight = params[4] if context == 2 else params[3]
    for j in range(cart_idx.shape[0]):
        o_item[m], o_weight[m], o_code[m] = cart_idx[j], cart_weight, _CART
        m += 1
    half_life = params[2]
    for line in range(lines.shape[0]):
        a, b = lines[line, 0], lines[line, 1]
        s1 = a  # ts SEP event type SEP item
        while s1 < b and rec[s1] != _SEP:
            s1 += 1
        s2 = s1 + 1
        while s2 < b and rec[s2] != _SEP:
            s2 += 1
        if s2 >= b:
            return fail
        ts = _parse_float(rec, a, s1)
        idx = _lookup(rec, s2 + 1, b, ids, id_start, slots)
        if np.isnan(ts) or idx < 0:
            return fail
        weight = 0.0
        for t in range(event_weight.shape[0]):
            ea, eb = event_start[t], event_start[t + 1]
            if eb - ea == s2 - s1 - 1:
                same = True
                for j in range(eb - ea):
                    if event_names[ea + j] != rec[s1 + 1 + j]:
                        same = False
                        break
                if same:
                    weight = event_weight[t]
                    break
        age = max(now - ts, 0.0)
        o_item[m], o_weight[m], o_code[m] = idx, weight * 0.5 ** (age / half_life), _VIEWED
        m += 1
    return o_item[:m], o_weight[:m], o_code[:m]


@_inline
def _strongest(
    o_item: np.ndarray, o_weight: np.ndarray, o_code: np.ndarray, max_seeds: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One seed per item (its strongest positive offer; the first on a tie), the strongest
    ``max_seeds`` first (ties in order of first offer)."""
    m = o_item.shape[0]
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
    order = np.argsort(-u_weight[:k], kind="mergesort")[:max_seeds]
    return u_item[order], u_weight[order], u_code[order]


@_inline
def _gather(
    seeds: np.ndarray, sim_items: np.ndarray, sim_scores: np.ndarray, sim_len: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The similar lists of the seeds that have one, concatenated (items, scores, starts)
    as :func:`serving.kernels.personal_top` takes them, and those seeds' items."""
    total = 0
    n_used = 0
    for j in range(seeds.shape[0]):
        if sim_len[seeds[j]] > 0:
            total += sim_len[seeds[j]]
            n_used += 1
    s_items = np.empty(total, np.int64)
    s_scores = np.empty(total)
    s_starts = np.zeros(n_used + 1, np.int64)
    seed_item = np.empty(n_used, np.int64)
    u = 0
    at = 0
    for j in range(seeds.shape[0]):
        row = seeds[j]
        length = sim_len[row]
        if length <= 0:
            continue
        for e in range(length):
            s_items[at + e] = sim_items[row, e]
            s_scores[at + e] = sim_scores[row, e]
        at += length
        s_starts[u + 1] = at
        seed_item[u] = row
        u += 1
    return s_items, s_scores, s_starts, seed_item


@_inline
def _bans(
    drop: np.ndarray,
    cart_idx: np.ndarray,
    buy: np.ndarray,
    ids: np.ndarray,
    id_start: np.ndarray,
    slots: np.ndarray,
    repeatable: np.ndarray,
    repeatable_codes: np.ndarray,
    category: np.ndarray,
) -> np.ndarray:
    """The sorted indices never to show, as :func:`serving.rerank._banned` makes them: the
    request's drops, the (banned) cart, and what was bought unless repeatable (the
    purchases reply is item, ts, item, ts, ...; unknown items cannot match)."""
    lines = _each_line(buy)
    ban = np.empty(drop.shape[0] + cart_idx.shape[0] + lines.shape[0], np.int64)
    nb = 0
    for i in range(drop.shape[0]):
        ban[nb] = drop[i]
        nb += 1
    for j in range(cart_idx.shape[0]):
        ban[nb] = cart_idx[j]
        nb += 1
    for line in range(0, lines.shape[0], 2):
        idx = _lookup(buy, lines[line, 0], lines[line, 1], ids, id_start, slots)
        if idx < 0 or repeatable[idx]:
            continue
        again = False
        for r in range(repeatable_codes.shape[0]):
            if repeatable_codes[r] == category[idx]:
                again = True
                break
        if not again:
            ban[nb] = idx
            nb += 1
    return np.sort(ban[:nb])


@_inline
def _write(
    out: np.ndarray,
    chosen: np.ndarray,
    p_items: np.ndarray,
    p_score: np.ndarray,
    p_seed: np.ndarray,
    seed_item: np.ndarray,
    seed_code: np.ndarray,
    esc: np.ndarray,
    esc_start: np.ndarray,
    parts: np.ndarray,
    part_start: np.ndarray,
) -> int:
    """The chosen items as :func:`serving.api.deps.items_json` writes them, into ``out``:
    its length; -1 for a score repr would write differently, -2 when ``out`` is short."""
    size = 2
    for i in range(chosen.shape[0]):
        item = p_items[chosen[i]]
        size += 160 + 2 * (esc_start[item + 1] - esc_start[item])
        k = p_seed[chosen[i]]
        if k >= 0:
            size += esc_start[seed_item[k] + 1] - esc_start[seed_item[k]]
    if size > out.shape[0]:
        return -2
    w = 0
    out[w] = 91  # [
    w += 1
    for i in range(chosen.shape[0]):
        pos = chosen[i]
        if i:
            out[w] = 44  # ,
            w += 1
        item = p_items[pos]
        score = 1.0 + max(p_score[pos], 0.0)
        if not score < 1e9:  # (larger: repr's digits differ from the fixed-point ones)
            return -1
        w = _put(out, w, parts, part_start[0], part_start[1])
        w = _put(out, w, esc, esc_start[item], esc_start[item + 1])
        w = _put(out, w, parts, part_start[1], part_start[2])
        w = _put_score(out, w, score)
        w = _put(out, w, parts, part_start[2], part_start[3])
        k = p_seed[pos]
        code = _FOR_YOU if k < 0 else seed_code[k]
        if code == _FOR_YOU:
            w = _put(out, w, parts, part_start[5], part_start[6])
        else:  # the sentence around the seed's id
            s = seed_item[k]
            lead = 4 + 2 * code
            w = _put(out, w, parts, part_start[lead], part_start[lead + 1])
            w = _put(out, w, esc, esc_start[s], esc_start[s + 1])
            w = _put(out, w, parts, part_start[lead + 1], part_start[lead + 2])
        w = _put(out, w, parts, part_start[3], part_start[4])
        w = _put(out, w, parts, part_start[12 + code], part_start[13 + code])
        w = _put(out, w, parts, part_start[4], part_start[5])
    out[w] = 93  # ]
    w += 1
    return w


def warm_up() -> None:
    """Compile (or load from the cache) the kernel before the first request: one answer
    on a two-item catalog, with the argument types the API passes."""
    from serving.rerank import RerankConfig as _Config
    from serving.store.codec import encode_activity, encode_ranked

    config = _Config()
    table = ItemTable(
        version="warm-up",
        item_ids=np.array(["a", "b"], dtype=object),
        category=np.zeros(2, np.int32),
        categories=("c",),
        price=np.ones(2, np.float32),
        in_stock=np.ones(2, np.bool_),
        created_at=np.zeros(2),
        repeatable=np.zeros(2, np.bool_),
    )
    similar = {"a": Candidates(np.ones(1, np.int32), np.ones(1, np.float32))}
    similar["b"] = Candidates.empty()
    compiled = compile_version(table, similar, config, built_at=0.0)
    assert compiled is not None
    answer(
        compiled,
        compile_config(config),
        RerankRequest(now=1.0, n=1, exclude=("b",)),
        encode_ranked(np.zeros(1, np.int64), np.ones(1)),
        [encode_activity(0.5, "view", "a").encode()],
        [b"b"],
        [b"a", b"1.0"],
        table.index,
    )


__all__ = [
    "CompiledConfig",
    "CompiledVersion",
    "answer",
    "compile_config",
    "compile_version",
    "eligible",
    "similar_views",
    "warm_up",
]
