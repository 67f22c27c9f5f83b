"""The JSON of ranked items, written in compiled code into a reused buffer.

One item is ``{"item_id": ..., "score": ..., "reason": ..., "reason_code": ...}``, the
fields of ``serving.api.schemas.RankedItemOut``, in that order. Reason sentences and codes
come from ``serving.rerank.reason_text`` (the one place that words them), cut around their
argument once at import. Scores are written as ``round(score, 6)`` as Python's ``repr``
writes it (computed as ``round(score * 1e6) / 1e6``, which can differ from Python's correctly
rounded ``round`` in the last digit on an exact tie); the pipeline's scores lie in (0, 1e9):
the settings bound the weights.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from serving.core.arrays import VersionArrays, packed
from serving.core.pipeline import FOR_YOU, TREND_IN_CATEGORY
from serving.rerank import REASON_CODES, reason_text

_jit = njit(cache=True, nogil=True, boundscheck=False)
_inline = njit(cache=True, nogil=True, boundscheck=False, inline="always")

TOO_SMALL = -2  # the buffer cannot hold the answer: grow it and write again


def _parts() -> list[bytes]:
    """The fixed pieces: 0-4 the item's JSON around its values, then for each reason code
    (``REASON_CODES`` order) its sentence before and after its argument, then the codes."""
    out = [b'{"item_id":"', b'","score":', b',"reason":"', b'","reason_code":"', b'"}']
    for code in REASON_CODES:
        before, _, after = reason_text(code, "\0").partition("\0")
        out += [before.encode(), after.encode()]
    out += [code.encode() for code in REASON_CODES]
    return out


PARTS, PART_START = packed(_parts())
_SENTENCE = 5  # parts index of the first sentence piece
_CODE = 5 + 2 * len(REASON_CODES)  # parts index of the first code


@_inline
def _put(out: np.ndarray, at: int, src: np.ndarray, a: int, b: int) -> int:
    for j in range(a, b):
        out[at] = src[j]
        at += 1
    return at


@_inline
def _put_score(out: np.ndarray, at: int, value: float) -> int:
    """``value`` (0 <= value < 1e9) rounded to 6 decimals as Python's repr writes it."""
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
def write_items(
    out: np.ndarray,
    at: int,
    v: VersionArrays,
    trend_arg: bytes,
    item: np.ndarray,
    score: np.ndarray,
    code: np.ndarray,
    arg: np.ndarray,
    parts: np.ndarray,
    part_start: np.ndarray,
) -> int:
    """Write the JSON array of the items into ``out`` from ``at``: the end, or
    :data:`TOO_SMALL`. ``arg`` is the seed item of seed reasons and the category code of
    "trending in" (-1: the request's own category, ``trend_arg``)."""
    named = np.frombuffer(trend_arg, np.uint8)
    size = at + 2
    for i in range(item.shape[0]):
        size += 200 + v.esc_start[item[i] + 1] - v.esc_start[item[i]]
        if code[i] == TREND_IN_CATEGORY:
            a = arg[i]
            size += named.shape[0] if a < 0 else v.cat_esc_start[a + 1] - v.cat_esc_start[a]
        elif code[i] != FOR_YOU and arg[i] >= 0:
            size += v.esc_start[arg[i] + 1] - v.esc_start[arg[i]]
    if size > out.shape[0]:
        return TOO_SMALL
    w = at
    out[w] = 91  # [
    w += 1
    for i in range(item.shape[0]):
        if i:
            out[w] = 44  # ,
            w += 1
        x = item[i]
        w = _put(out, w, parts, part_start[0], part_start[1])
        w = _put(out, w, v.esc, v.esc_start[x], v.esc_start[x + 1])
        w = _put(out, w, parts, part_start[1], part_start[2])
        w = _put_score(out, w, score[i])
        w = _put(out, w, parts, part_start[2], part_start[3])
        rc = code[i]
        lead = _SENTENCE + 2 * rc
        w = _put(out, w, parts, part_start[lead], part_start[lead + 1])
        a = arg[i]
        if rc == TREND_IN_CATEGORY:
            if a < 0:
                w = _put(out, w, named, 0, named.shape[0])
            else:
                w = _put(out, w, v.cat_esc, v.cat_esc_start[a], v.cat_esc_start[a + 1])
        elif rc != FOR_YOU and a >= 0:
            w = _put(out, w, v.esc, v.esc_start[a], v.esc_start[a + 1])
        w = _put(out, w, parts, part_start[lead + 1], part_start[lead + 2])
        w = _put(out, w, parts, part_start[3], part_start[4])
        w = _put(out, w, parts, part_start[_CODE + rc], part_start[_CODE + rc + 1])
        w = _put(out, w, parts, part_start[4], part_start[5])
    out[w] = 93  # ]
    return w + 1
