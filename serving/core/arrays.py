"""What the serving core reads, as named tuples of arrays: a version, the config, a request,
a customer's state. Built here, in Python; read by the compiled pipeline
(``serving.core.pipeline``), which never sees a Python object.

* :class:`VersionArrays` - one published version: its ids (UTF-8, in a hash table, and
  JSON-escaped for the writer), the item columns the rules read, the similar lists as a
  matrix filled as they load (``sim_len`` -1: not loaded yet), the fallback lists (popular,
  trending, and each category's trending list resolved once), and the config's promoted
  items and repeatable categories. One per version and process.
* :class:`ConfigArrays` - :class:`serving.rerank.RerankConfig` as numbers.
* :class:`RequestArrays` - one request: context, n, now, the product on screen, the
  request's own bans and filters.
* :class:`StateArrays` - one customer's replies as Redis sent them (``serving.store.codec``'s
  encoding), newline-joined.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import orjson

from serving import rules
from serving.rerank import (
    CONTEXTS,
    Fallback,
    RerankConfig,
    RerankRequest,
    trending_for,
)
from serving.store.rawcodec import build_slots
from serving.types import Candidates, ItemTable

CONTEXT_CODE = {name: code for code, name in enumerate(CONTEXTS)}  # home product cart email
DIVERSITY_CODE = {"none": 0, "cap": 1, "mmr": 2}
POPULAR_LIST, TRENDING_LIST = 0, 1  # list ids of VersionArrays.lists; categories' from 2
SIMILAR_WIDTH = 64  # similar entries per item to start with (the matrix widens if needed)


class VersionArrays(NamedTuple):
    """One version's arrays (see the module docstring)."""

    ids: np.ndarray  # uint8: the raw (UTF-8) item ids, concatenated
    id_start: np.ndarray  # int64 (n_items + 1,)
    slots: np.ndarray  # int64 open-addressing table: hash -> item index (-1: empty)
    esc: np.ndarray  # uint8: the JSON-escaped ids, concatenated
    esc_start: np.ndarray  # int64 (n_items + 1,)
    sim_items: np.ndarray  # int32 (n_items, width): each item's similar items, best first
    sim_scores: np.ndarray  # float32 (n_items, width)
    sim_len: np.ndarray  # int32 (n_items,): entries of each row; -1: not loaded yet
    created_at: np.ndarray  # float64 epoch seconds, NaN unknown
    maybe_new: np.ndarray  # uint8 bitmap (little bit order): items new at ``built_at``
    built_at: float  # epoch seconds: every later request's new arrivals have their bit set
    in_stock: np.ndarray  # bool
    price: np.ndarray  # float32, NaN unknown
    category: np.ndarray  # int32 code, -1 unknown
    n_codes: int
    cat_esc: np.ndarray  # uint8: the JSON-escaped category paths, concatenated
    cat_esc_start: np.ndarray  # int64 (n_codes + 1,)
    repeatable: np.ndarray  # bool
    repeatable_codes: np.ndarray  # int32 sorted: the config's repeatable categories
    promoted: np.ndarray  # int64 sorted: the config's promoted items (none without a boost)
    lists: np.ndarray  # int64: fallback lists concatenated (popular, trending, per category)
    list_start: np.ndarray  # int64 (n_lists + 1,)
    trend_list: np.ndarray  # int64 (n_codes,): the list backing a thin answer in that category
    trend_arg: np.ndarray  # int64 (n_codes,): the category the list is of (the reason's)


class ConfigArrays(NamedTuple):
    """The re-ranking config as the pipeline reads it."""

    model_weight: float
    session_weight: float
    half_life_s: float
    cart_seed_weight: float
    cart_context_seed_weight: float
    product_seed_weight: float
    new_arrival_s: float
    new_arrival_boost: float
    promoted_boost: float
    event_names: np.ndarray  # uint8: event types, concatenated
    event_start: np.ndarray  # int64
    event_weight: np.ndarray  # float64
    max_seeds: int
    cart_banned: int  # bit per context code: the cart is banned there
    email_cap_last: int
    email_cap_s: float
    diversity: int  # DIVERSITY_CODE
    cap: int  # per-category cap (0: none)
    mmr_lambda: float


class RequestArrays(NamedTuple):
    """One request as the pipeline reads it."""

    context: int  # CONTEXT_CODE
    n: int
    now: float
    item: int  # index of the request's item_id; -1 none or unknown
    item_seed: bytes  # the product on screen's id (UTF-8) when it seeds, else empty
    only_item_seed: bool  # similar items: the item is the only seed (weight 1)
    drop: np.ndarray  # int64 sorted: the exclude list and the request's item
    code_ok: np.ndarray  # bool (n_codes + 1,): category filter, last = unknown; empty: none
    price_min: float  # NaN: no bound
    price_max: float
    maybe_new: np.ndarray  # the version's bitmap when valid at ``now``, else empty
    trend_given: bool  # the request names a category: its trending list is below
    trend_items: np.ndarray  # int64
    trend_arg: bytes  # the JSON-escaped category the list is of


class StateArrays(NamedTuple):
    """A customer's replies, newline-joined, as read-only uint8 views of the bytes
    (``serving.store.codec``'s encoding)."""

    candidates: np.ndarray  # the encoded ranked list; empty: none
    recent: np.ndarray  # ts SEP event type SEP item, newest first
    cart: np.ndarray  # item ids
    bought: np.ndarray  # item, ts, item, ts, ...
    mailed: np.ndarray  # send member, score, ...


def packed(strings: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """``strings`` concatenated (uint8; never empty) and where each starts (int64, one
    more entry than strings: the last is the end)."""
    starts = np.zeros(len(strings) + 1, np.int64)
    np.cumsum([len(x) for x in strings], out=starts[1:])
    return np.frombuffer(b"".join(strings) or b"\0", np.uint8).copy(), starts


def json_escaped(text: str) -> bytes:
    """``text`` as inside a JSON string (orjson's escaping, without the quotes)."""
    return orjson.dumps(text)[1:-1]


def version_arrays(
    table: ItemTable, fallback: Fallback, config: RerankConfig, built_at: float | None = None
) -> VersionArrays:
    """The arrays of ``table``'s version, similar lists not loaded yet (:func:`fill_similar`).

    ``built_at`` (default: now) dates the "may be new" bitmap: requests from then on look
    up ``created_at`` only for the items it marks (few, and all the new arrivals)."""
    n = table.n_items
    ids = [str(i) for i in table.item_ids.tolist()]
    raw = [i.encode() for i in ids]
    esc = [json_escaped(i) for i in ids]
    ids_arr, id_start = packed(raw)
    esc_arr, esc_start = (ids_arr, id_start) if esc == raw else packed(esc)
    cat_esc, cat_esc_start = packed([json_escaped(c) for c in table.categories])
    built_at = time.time() if built_at is None else built_at
    created_at = table.created_at.astype(np.float64, copy=False)
    lists, list_start, trend_list, trend_arg = _fallback_lists(table, fallback)
    return VersionArrays(
        ids=ids_arr,
        id_start=id_start,
        slots=build_slots(ids_arr, id_start),
        esc=esc_arr,
        esc_start=esc_start,
        sim_items=np.zeros((n, SIMILAR_WIDTH), np.int32),
        sim_scores=np.zeros((n, SIMILAR_WIDTH), np.float32),
        sim_len=np.full(n, -1, np.int32),
        created_at=created_at,
        maybe_new=np.packbits(
            created_at >= built_at - config.new_arrival_days * rules.DAY, bitorder="little"
        ),
        built_at=built_at,
        in_stock=table.in_stock.astype(np.bool_, copy=False),
        price=table.price.astype(np.float32, copy=False),
        category=table.category.astype(np.int32, copy=False),
        n_codes=len(table.categories),
        cat_esc=cat_esc,
        cat_esc_start=cat_esc_start,
        repeatable=table.repeatable.astype(np.bool_, copy=False),
        repeatable_codes=np.sort(rules.category_codes(table, config.repeatable_categories)),
        promoted=promoted_items(table, config),
        lists=lists,
        list_start=list_start,
        trend_list=trend_list,
        trend_arg=trend_arg,
    )


def promoted_items(table: ItemTable, config: RerankConfig) -> np.ndarray:
    """Sorted indices of the promoted items that get a boost (none when no boost)."""
    if config.promoted and config.promoted_boost:
        return np.sort(rules.indices_of(table, config.promoted))
    return np.empty(0, np.int64)


def _fallback_lists(
    table: ItemTable, fallback: Fallback
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Popular, trending, then for each category code the list :func:`trending_for` picks
    for it (its own, its sub-categories' merged, or its nearest parent's), as one
    concatenation; and per code that list's id and the category it is of."""
    position = {path: code for code, path in enumerate(table.categories)}
    chosen: list[np.ndarray] = [fallback.popular.items, fallback.trending.items]
    trend_list = np.full(len(table.categories), -1, np.int64)
    trend_arg = np.full(len(table.categories), -1, np.int64)
    for code, path in enumerate(table.categories):
        found = trending_for(fallback, path)
        if found is not None and found[0] in position:
            trend_list[code], trend_arg[code] = len(chosen), position[found[0]]
            chosen.append(found[1].items)
    starts = np.zeros(len(chosen) + 1, np.int64)
    np.cumsum([len(c) for c in chosen], out=starts[1:])
    lists = np.concatenate([c.astype(np.int64) for c in chosen]) if chosen else np.empty(0)
    return lists.astype(np.int64), starts, trend_list, trend_arg


def fill_similar(
    arrays: VersionArrays, rows: Sequence[int], lists: Sequence[Candidates]
) -> VersionArrays:
    """Store the similar lists of item ``rows`` (in place; a new tuple when the matrix must
    widen for a longer list)."""
    width = max((len(c) for c in lists), default=0)
    if width > arrays.sim_items.shape[1]:
        n = arrays.sim_items.shape[0]
        items = np.zeros((n, width), np.int32)
        scores = np.zeros((n, width), np.float32)
        old = arrays.sim_items.shape[1]
        items[:, :old], scores[:, :old] = arrays.sim_items, arrays.sim_scores
        arrays = arrays._replace(sim_items=items, sim_scores=scores)
    for row, c in zip(rows, lists, strict=True):
        m = len(c)
        arrays.sim_items[row, :m] = c.items
        arrays.sim_scores[row, :m] = c.scores
        arrays.sim_len[row] = m
    return arrays


def similar_of(arrays: VersionArrays, row: int) -> Candidates | None:
    """The similar list of item ``row`` as loaded (a view), None when not loaded yet."""
    m = int(arrays.sim_len[row])
    if m < 0:
        return None
    return Candidates(arrays.sim_items[row, :m], arrays.sim_scores[row, :m])


def category_cap(config: RerankConfig) -> int:
    """Items per category the diversity rule allows (0: no cap)."""
    return config.max_per_category if config.diversity == "cap" else 0


def config_arrays(config: RerankConfig) -> ConfigArrays:
    names, starts = packed([t.encode() for t in config.event_weights])
    if config.diversity not in DIVERSITY_CODE:
        raise ValueError(f"diversity must be one of {sorted(DIVERSITY_CODE)}")
    return ConfigArrays(
        model_weight=float(config.model_weight),
        session_weight=float(config.session_weight),
        half_life_s=max(float(config.session_half_life_s), 1e-9),
        cart_seed_weight=float(config.cart_seed_weight),
        cart_context_seed_weight=float(config.cart_context_seed_weight),
        product_seed_weight=float(config.product_seed_weight),
        new_arrival_s=float(config.new_arrival_days * rules.DAY),
        new_arrival_boost=float(config.new_arrival_boost),
        promoted_boost=float(config.promoted_boost),
        event_names=names,
        event_start=starts,
        event_weight=np.array([config.event_weights[t] for t in config.event_weights], float),
        max_seeds=int(config.max_seeds),
        cart_banned=sum(
            1 << code for ctx, code in CONTEXT_CODE.items() if ctx in config.cart_excluded_contexts
        ),
        email_cap_last=int(config.email_cap_last),
        email_cap_s=float(config.email_cap_days * rules.DAY),
        diversity=DIVERSITY_CODE[config.diversity],
        cap=category_cap(config),
        mmr_lambda=float(config.mmr_lambda),
    )


_NO_ITEMS = np.empty(0, np.int64)
_NO_BYTES = np.empty(0, np.uint8)
_NO_FLAGS = np.empty(0, np.bool_)

Trend = tuple[np.ndarray, bytes]  # (items, JSON-escaped category) of a named category


def request_arrays(
    arrays: VersionArrays,
    table: ItemTable,
    request: RerankRequest,
    trend: Callable[[str], Trend | None],
    only_item_seed: bool = False,
) -> RequestArrays:
    """The arrays of ``request`` on a version (``trend``: the trending list of a category
    named by the request, cached by the caller: :func:`request_trend`)."""
    index = table.index
    item = index.get(request.item_id, -1) if request.item_id else -1
    drop = [i for i in map(index.get, request.exclude) if i is not None]
    if item >= 0:
        drop.append(item)
    seeds_item = request.item_id and (only_item_seed or request.context == "product")
    code_ok = _NO_FLAGS
    if request.category or request.exclude_categories:
        code_ok = category_filter(table, request.category, request.exclude_categories)
    named = trend(request.category) if request.category else None
    return RequestArrays(
        context=CONTEXT_CODE[request.context],
        n=int(request.n),
        now=float(request.now),
        item=item,
        item_seed=request.item_id.encode() if seeds_item and request.item_id else b"",
        only_item_seed=only_item_seed,
        drop=np.array(sorted(drop), np.int64) if drop else _NO_ITEMS,
        code_ok=code_ok,
        price_min=math.nan if request.price_min is None else float(request.price_min),
        price_max=math.nan if request.price_max is None else float(request.price_max),
        maybe_new=arrays.maybe_new if request.now >= arrays.built_at else _NO_BYTES,
        trend_given=bool(request.category),
        trend_items=named[0] if named is not None else _NO_ITEMS,
        trend_arg=named[1] if named is not None else b"",
    )


def category_filter(table: ItemTable, include: str | None, exclude: Sequence[str]) -> np.ndarray:
    """Per category code (and, last, for items of no category) whether the request's
    category filter keeps its items: under ``include`` when given, under none of
    ``exclude`` (``rules.category_codes``: case-insensitive paths)."""
    n = len(table.categories)
    keep = np.ones(n + 1, np.bool_)
    if include:
        keep[:] = False
        keep[rules.category_codes(table, (include,))] = True
    if exclude:
        keep[rules.category_codes(table, exclude)] = False
    return keep


def request_trend(fallback: Fallback, category: str) -> Trend | None:
    """The trending list backing a thin answer under the named ``category``
    (:func:`trending_for`) as the pipeline reads it; None when there is none."""
    found = trending_for(fallback, category)
    if found is None:
        return None
    return found[1].items.astype(np.int64), json_escaped(found[0])


def state_arrays(
    candidates: bytes | None,
    recent: Sequence[bytes],
    cart: Sequence[bytes],
    bought: Sequence[bytes],
    mailed: Sequence[bytes] = (),
) -> StateArrays:
    """A customer's raw replies (flat lists of bytes, as the raw transport returns them)."""
    return StateArrays(
        np.frombuffer(candidates or b"", np.uint8),
        np.frombuffer(b"\n".join(recent), np.uint8),
        np.frombuffer(b"\n".join(cart), np.uint8),
        np.frombuffer(b"\n".join(bought), np.uint8),
        np.frombuffer(b"\n".join(mailed), np.uint8),
    )


def lists_of(candidates: Mapping[str, Candidates], ids: Sequence[str]) -> list[Candidates]:
    """The lists of ``ids`` (empty where missing)."""
    return [candidates.get(i, Candidates.empty()) for i in ids]
