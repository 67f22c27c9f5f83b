"""The compiled half of the codec: the store's raw replies read into arrays (numba).

``serving.store.codec`` writes and (in Python) reads every value; the serving core reads the
same bytes here without building Python objects: ranked lists (:func:`decode_ranked_compiled`),
newline-joined replies (:func:`each_line`), timestamps (:func:`parse_float`, exactly as
Python's ``float()`` for the store's six-decimal format) and ids, looked up in a version's
id table (:func:`build_slots`, :func:`lookup`) as UTF-8 bytes. Ids never hold a control
character (``features.ids``), so newline and ``SEP`` can join them.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_jit = njit(cache=True, nogil=True, boundscheck=False)
# called many times per request: inlined into the caller (a call between compiled functions
# passing arrays pays reference counting on each of them)
_inline = njit(cache=True, nogil=True, boundscheck=False, inline="always")

NL = ord("\n")


@_jit
def decode_ranked_compiled(payload: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``codec.decode_ranked`` for compiled callers: ``payload`` as uint8 (empty: no list)
    -> int64 indices and float64 scores. A payload of an unknown index width gives -1 as
    its only index (the caller reports it)."""
    if payload.shape[0] == 0:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    width = payload[0]
    if width != 2 and width != 4:
        return np.full(1, -1, np.int64), np.zeros(1)
    step = width + 2
    n = (payload.shape[0] - 1) // step
    items = np.empty(n, np.int64)
    scores = np.empty(n)
    for r in range(n):
        at = 1 + r * step
        idx = np.int64(payload[at]) | (np.int64(payload[at + 1]) << 8)
        if width == 4:
            idx |= (np.int64(payload[at + 2]) << 16) | (np.int64(payload[at + 3]) << 24)
            if idx >= 2**31:
                idx -= 2**32  # int32
        items[r] = idx
        half = np.int64(payload[at + width]) | (np.int64(payload[at + width + 1]) << 8)
        exponent = (half >> 10) & 0x1F
        fraction = half & 0x3FF
        value: float
        if exponent == 0:
            value = fraction * 2.0**-24  # subnormal
        elif exponent == 31:
            value = math.inf if fraction == 0 else math.nan
        else:
            value = (1.0 + fraction / 1024.0) * 2.0 ** (exponent - 15)
        scores[r] = -value if half & 0x8000 else value
    return items, scores


@_inline
def hash_bytes(buf: np.ndarray, a: int, b: int) -> int:
    """FNV-1a of ``buf[a:b]``."""
    h = np.uint64(14695981039346656037)
    for i in range(a, b):
        h = (h ^ np.uint64(buf[i])) * np.uint64(1099511628211)
    return int(h >> np.uint64(1))


@_jit
def build_slots(ids: np.ndarray, start: np.ndarray) -> np.ndarray:
    """An open-addressing table over the ids ``ids[start[i]:start[i+1]]``: hash -> index
    (-1: empty); a repeated id keeps its last index (as a dict built in order would)."""
    n = start.shape[0] - 1
    size = 16
    while size < 2 * n:
        size <<= 1
    slots = np.full(size, -1, np.int64)
    for i in range(n):
        a, b = start[i], start[i + 1]
        h = hash_bytes(ids, a, b) & (size - 1)
        while slots[h] >= 0 and not _same(ids, a, b, ids, start, slots[h]):
            h = (h + 1) & (size - 1)
        slots[h] = i
    return slots


@_inline
def _same(buf: np.ndarray, a: int, b: int, ids: np.ndarray, start: np.ndarray, i: int) -> bool:
    s = start[i]
    if start[i + 1] - s != b - a:
        return False
    for j in range(b - a):  # noqa: SIM110 (numba compiles no generator expressions)
        if ids[s + j] != buf[a + j]:
            return False
    return True


@_inline
def lookup(
    buf: np.ndarray, a: int, b: int, ids: np.ndarray, start: np.ndarray, slots: np.ndarray
) -> int:
    """Index of the item whose id is ``buf[a:b]``; -1 when unknown."""
    size = slots.shape[0]
    h = hash_bytes(buf, a, b) & (size - 1)
    while True:
        i = slots[h]
        if i < 0:
            return -1
        if _same(buf, a, b, ids, start, i):
            return i
        h = (h + 1) & (size - 1)


@_inline
def each_line(buf: np.ndarray) -> np.ndarray:
    """Where each newline-separated entry of ``buf`` starts and ends: (n, 2) int64."""
    n = 1 if buf.shape[0] else 0
    for i in range(buf.shape[0]):
        if buf[i] == NL:
            n += 1
    bounds = np.empty((n, 2), np.int64)
    a = 0
    for k in range(n):
        b = a
        while b < buf.shape[0] and buf[b] != NL:
            b += 1
        bounds[k, 0], bounds[k, 1] = a, b
        a = b + 1
    return bounds


@_inline
def find(buf: np.ndarray, a: int, b: int, byte: int) -> int:
    """The first position of ``byte`` in ``buf[a:b]``; ``b`` when there is none."""
    while a < b and buf[a] != byte:
        a += 1
    return a


@_inline
def parse_float(buf: np.ndarray, a: int, b: int) -> float:
    """The decimal number ``buf[a:b]`` (sign, digits, point, exponent); NaN when it is not
    one. Exactly Python's ``float()`` when that takes one rounding (at most 2**53 as an
    integer mantissa and a power of ten up to 22: the store's six-decimal timestamps, 16
    digits until the year 2255); otherwise within a unit or two in the last place (digits
    past the 18th are dropped)."""
    i = a
    negative = False
    if i < b and (buf[i] == 45 or buf[i] == 43):  # - +
        negative = buf[i] == 45
        i += 1
    mant = 0
    digits = 0
    scale = 0
    while i < b and 48 <= buf[i] <= 57:
        if digits < 18:
            mant = mant * 10 + (int(buf[i]) - 48)
        else:
            scale += 1
        digits += 1
        i += 1
    if i < b and buf[i] == 46:  # .
        i += 1
        while i < b and 48 <= buf[i] <= 57:
            if digits < 18:
                mant = mant * 10 + (int(buf[i]) - 48)
                scale -= 1
            digits += 1
            i += 1
    if digits == 0:
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
            e = e * 10 + (int(buf[i]) - 48)
            e_digits += 1
            i += 1
        if e_digits == 0:
            return np.nan
        scale += -e if e_negative else e
    if i != b:
        return np.nan
    if -22 <= scale <= 22:
        value = float(mant) * _POW10[scale] if scale >= 0 else float(mant) / _POW10[-scale]
    else:
        value = float(mant) * 10.0**scale
    return -value if negative else value


_POW10 = np.array([10.0**k for k in range(23)])  # exact: every 10**k up to 1e22 is a double


@_inline
def id_less(ids: np.ndarray, start: np.ndarray, x: int, y: int) -> bool:
    """Id ``x`` sorts before id ``y`` (bytewise: code-point order, as Python sorts str)."""
    a, b = start[x], start[y]
    la, lb = start[x + 1] - a, start[y + 1] - b
    for j in range(min(la, lb)):
        if ids[a + j] != ids[b + j]:
            return ids[a + j] < ids[b + j]
    return la < lb
