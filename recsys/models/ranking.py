"""Vectorised top-n selection shared by every model (pure functions, no Python loop per row).

Every function returns the contract's pair of arrays of shape (rows, n): ``items`` int32 with
-1 as padding and ``scores`` float32 with -inf as padding, each row sorted by descending score.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

#: soft cap on the number of dense scores materialised at once (float32 -> 64 MB)
CHUNK_CELLS = 1 << 24


def empty(rows: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """All-padding result."""
    return np.full((rows, n), -1, dtype=np.int32), np.full((rows, n), -np.inf, dtype=np.float32)


def pad(items: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mark invalid cells (item < 0 or score not finite-or-+inf) as padding and widen to n."""
    items = np.asarray(items, dtype=np.int32)
    scores = np.asarray(scores, dtype=np.float32)
    invalid = (items < 0) | np.isneginf(scores) | np.isnan(scores)
    # implicit marks filtered cells with -FLT_MAX
    invalid |= scores <= -np.finfo(np.float32).max
    if invalid.any():
        items = np.where(invalid, -1, items).astype(np.int32, copy=False)
        scores = np.where(invalid, -np.inf, scores).astype(np.float32, copy=False)
    width = items.shape[1]
    if width < n:
        out_items, out_scores = empty(items.shape[0], n)
        out_items[:, :width] = items
        out_scores[:, :width] = scores
        return out_items, out_scores
    return items[:, :n], scores[:, :n]


def structure(matrix: sp.csr_matrix | None) -> sp.csr_matrix | None:
    """A CSR copy whose stored entries are all 1 (exclusion follows stored entries, not values)."""
    if matrix is None:
        return None
    out = sp.csr_matrix(matrix, copy=True)
    out.data = np.ones_like(out.data, dtype=np.float32)
    return out


def one_hot(items: np.ndarray, n_items: int) -> sp.csr_matrix:
    """A CSR row per item with its own column set (to exclude an item from its own list)."""
    items = np.asarray(items, dtype=np.int64)
    return sp.csr_matrix(
        (np.ones(len(items), dtype=np.float32), items, np.arange(len(items) + 1)),
        shape=(len(items), n_items),
    )


def topn_dense(
    scores: np.ndarray, n: int, exclude: sp.csr_matrix | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-n of each row of a dense score matrix (modified in place where excluded)."""
    rows, cols = scores.shape
    if exclude is not None and exclude.nnz:
        ex = sp.csr_matrix(exclude)
        r = np.repeat(np.arange(ex.shape[0]), np.diff(ex.indptr))
        scores[r, ex.indices] = -np.inf
    k = min(n, cols)
    if k <= 0:
        return empty(rows, n)
    return pad(*_top_k(scores, k), n)


def _top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column positions and values of the k largest scores of each row, best first."""
    rows, cols = scores.shape
    if k < cols:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(cols), (rows, cols))
    top = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-top, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(top, order, axis=1)


def topn_chunked(
    score: Callable[[slice], np.ndarray],
    rows: int,
    n_items: int,
    n: int,
    exclude: sp.csr_matrix | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-n for ``rows`` rows whose dense scores ``score(slice)`` are computed chunk by chunk."""
    items, scores = empty(rows, n)
    step = max(1, CHUNK_CELLS // max(n_items, 1))
    for start in range(0, rows, step):
        part = slice(start, min(rows, start + step))
        dense = np.asarray(score(part), dtype=np.float32)
        ex = exclude[part] if exclude is not None else None
        items[part], scores[part] = topn_dense(dense, n, ex)
    return items, scores


def topn_sparse(
    scores: sp.csr_matrix, n: int, exclude: sp.csr_matrix | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-n of the stored entries of each row of a sparse score matrix (missing = not ranked)."""
    scores = sp.csr_matrix(scores)
    scores.sum_duplicates()
    rows = scores.shape[0]
    row_of = np.repeat(np.arange(rows, dtype=np.int64), np.diff(scores.indptr))
    cols_of = scores.indices.astype(np.int32)
    data = scores.data.astype(np.float32)
    if exclude is not None and exclude.nnz and scores.nnz:
        keep = ~np.isin(
            row_of * scores.shape[1] + cols_of, exclusion_keys(exclude, scores.shape[1])
        )
        row_of, cols_of, data = row_of[keep], cols_of[keep], data[keep]
    if data.size == 0:
        return empty(rows, n)
    lengths = np.bincount(row_of, minlength=rows)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    pos = np.arange(data.size) - starts[row_of]
    width = int(lengths.max())
    dense = np.full((rows, width), -np.inf, dtype=np.float32)
    cols = np.full((rows, width), -1, dtype=np.int32)
    dense[row_of, pos] = data
    cols[row_of, pos] = cols_of
    part, top = _top_k(dense, min(n, width))
    return pad(np.take_along_axis(cols, part, axis=1), top, n)


def exclusion_keys(exclude: sp.csr_matrix, n_cols: int) -> np.ndarray:
    """``row * n_cols + col`` for every stored entry of ``exclude`` (for vectorised lookups)."""
    ex = sp.csr_matrix(exclude)
    ex_rows = np.repeat(np.arange(ex.shape[0], dtype=np.int64), np.diff(ex.indptr))
    return ex_rows * n_cols + ex.indices


def drop_excluded(
    items: np.ndarray, scores: np.ndarray, exclude: sp.csr_matrix | None, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Remove excluded (row, item) cells from ranked lists, keep the order, return the first n."""
    items, scores = pad(items, scores, items.shape[1])
    if exclude is not None and exclude.nnz:
        rows = items.shape[0]
        n_cols = max(int(exclude.shape[1]), int(items.max(initial=0)) + 1)
        keys = np.arange(rows, dtype=np.int64)[:, None] * n_cols + items
        hit = np.isin(keys, exclusion_keys(exclude, n_cols)) & (items >= 0)
        hit |= items < 0
        order = np.argsort(hit, axis=1, kind="stable")
        items = np.take_along_axis(items, order, axis=1)
        scores = np.take_along_axis(scores, order, axis=1)
        hit = np.take_along_axis(hit, order, axis=1)
        items = np.where(hit, -1, items).astype(np.int32)
        scores = np.where(hit, -np.inf, scores).astype(np.float32)
    return pad(items, scores, n)


def max_row_nnz(matrix: sp.csr_matrix | None) -> int:
    if matrix is None or matrix.shape[0] == 0:
        return 0
    return int(np.diff(sp.csr_matrix(matrix).indptr).max())
