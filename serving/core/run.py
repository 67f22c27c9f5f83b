"""Running the compiled pipeline from Python: one request, or an email batch.

The caller (``serving.api.service``) reads the customer's replies, turns them into
:class:`~serving.core.arrays.StateArrays` and calls :func:`rank_one` or :func:`rank_batch`.
Either answers with the JSON of the items or with :class:`NeedLists`: similar lists the
pipeline needs that the version has not loaded yet; the caller loads them
(``arrays.fill_similar``) and calls again.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np
from numba import njit

from serving.core.arrays import ConfigArrays, RequestArrays, StateArrays, VersionArrays
from serving.core.pipeline import BAD_PAYLOAD, NEED_LISTS, rank
from serving.core.writer import PART_START, PARTS, TOO_SMALL, write_items

_jit = njit(cache=True, nogil=True, boundscheck=False)


class NeedLists(NamedTuple):
    """Load the similar lists of these item indices, then run again."""

    rows: np.ndarray


class Ranked(NamedTuple):
    """One customer's answer: the JSON array of its items and their indices."""

    json: bytes
    items: np.ndarray


class CorruptEntry(ValueError):
    """A stored value the pipeline cannot read (a store or publishing bug, not input)."""


class StateBatch(NamedTuple):
    """Many customers' replies: each field concatenated, ``starts`` (n_customers + 1, 5)
    where each customer's part of each field starts."""

    candidates: np.ndarray
    recent: np.ndarray
    cart: np.ndarray
    bought: np.ndarray
    mailed: np.ndarray
    starts: np.ndarray


def batch_of(states: list[StateArrays]) -> StateBatch:
    """The states of many customers as one :class:`StateBatch`."""
    starts = np.zeros((len(states) + 1, 5), np.int64)
    if states:
        np.cumsum([[len(f) for f in s] for s in states], axis=0, out=starts[1:])
    fields = [np.frombuffer(b"".join(s[k].tobytes() for s in states), np.uint8) for k in range(5)]
    return StateBatch(*fields, starts)


_buffers = threading.local()


def _buffer(size: int = 1 << 16) -> np.ndarray:
    """This thread's output buffer (reused: answers are copied out of it)."""
    out: np.ndarray | None = getattr(_buffers, "out", None)
    if out is None or out.shape[0] < size:
        out = _buffers.out = np.empty(max(size, 1 << 16), np.uint8)
    return out


@_jit
def _one(
    v: VersionArrays,
    c: ConfigArrays,
    r: RequestArrays,
    s: StateArrays,
    out: np.ndarray,
    parts: np.ndarray,
    part_start: np.ndarray,
) -> tuple[int, np.ndarray]:
    status, item, score, code, arg, need = rank(v, c, r, s)
    if status < 0:
        return status, need
    return write_items(out, 0, v, r.trend_arg, item, score, code, arg, parts, part_start), item


def rank_one(
    v: VersionArrays, c: ConfigArrays, r: RequestArrays, s: StateArrays
) -> Ranked | NeedLists:
    """One customer's answer (or the similar lists to load first)."""
    out = _buffer()
    while True:
        status, items = _one(v, c, r, s, out, PARTS, PART_START)
        if status != TOO_SMALL:
            break
        out = _buffer(4 * out.shape[0])
    if status == NEED_LISTS:
        return NeedLists(items)
    if status == BAD_PAYLOAD:
        raise CorruptEntry("a candidates payload with item indices outside the version")
    return Ranked(out[:status].tobytes(), items)


@_jit
def _batch(
    v: VersionArrays,
    c: ConfigArrays,
    r: RequestArrays,
    b: StateBatch,
    out: np.ndarray,
    parts: np.ndarray,
    part_start: np.ndarray,
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Every customer's JSON back to back in ``out``: (status, where each ends, the item
    indices concatenated, where each customer's start); status < 0 as :func:`_one`'s (with
    NEED_LISTS the rows of every customer that needs some)."""
    n = b.starts.shape[0] - 1
    ends = np.empty(n, np.int64)
    item_start = np.zeros(n + 1, np.int64)
    items = np.empty(n * max(r.n, 0), np.int64)
    need = np.empty(0, np.int64)
    w = 0
    failed = 0
    for i in range(n):
        st = b.starts
        s = StateArrays(
            b.candidates[st[i, 0] : st[i + 1, 0]],
            b.recent[st[i, 1] : st[i + 1, 1]],
            b.cart[st[i, 2] : st[i + 1, 2]],
            b.bought[st[i, 3] : st[i + 1, 3]],
            b.mailed[st[i, 4] : st[i + 1, 4]],
        )
        status, item, score, code, arg, rows = rank(v, c, r, s)
        if status == NEED_LISTS:
            need = np.concatenate((need, rows))
            failed = NEED_LISTS
            item_start[i + 1] = item_start[i]
            continue
        if status < 0:
            return status, ends, items, item_start
        if failed:
            item_start[i + 1] = item_start[i]
            continue
        w = write_items(out, w, v, r.trend_arg, item, score, code, arg, parts, part_start)
        if w < 0:
            return w, ends, items, item_start
        ends[i] = w
        m = item.shape[0]
        items[item_start[i] : item_start[i] + m] = item
        item_start[i + 1] = item_start[i] + m
    if failed:
        return failed, ends, np.unique(need), item_start
    return 0, ends, items, item_start


def rank_batch(
    v: VersionArrays, c: ConfigArrays, r: RequestArrays, batch: StateBatch
) -> list[Ranked] | NeedLists:
    """Every customer's answer (the same request for each), or the lists to load first."""
    out = _buffer()
    while True:
        status, ends, items, item_start = _batch(v, c, r, batch, out, PARTS, PART_START)
        if status != TOO_SMALL:
            break
        out = _buffer(4 * out.shape[0])
    if status == NEED_LISTS:
        return NeedLists(items)
    if status == BAD_PAYLOAD:
        raise CorruptEntry("a candidates payload with item indices outside the version")
    data = out[: ends[-1]].tobytes() if len(ends) else b""
    begin = [0, *ends[:-1].tolist()]
    spans = zip(begin, ends.tolist(), strict=True)
    bounds = item_start.tolist()
    return [Ranked(data[a:e], items[bounds[i] : bounds[i + 1]]) for i, (a, e) in enumerate(spans)]
