"""Confidence transforms applied by a model to its input matrix (a tunable hyper-parameter).

The matrices from ``features.matrices`` already hold aggregated, weighted confidence values;
models may re-shape them before learning:

- ``"linear"``: ``alpha * x`` (``alpha == 1`` returns the matrix untouched, no copy);
- ``"log1p"``: ``log1p(alpha * x)`` (damps heavy repeat interactions, Hu et al. style);
- ``"binary"``: 1 for every stored entry (relative weights, e.g. of non-positives, are lost).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

Confidence = Literal["linear", "log1p", "binary"]
CONFIDENCES: tuple[str, ...] = ("linear", "log1p", "binary")


def apply_confidence(
    matrix: sp.csr_matrix, kind: str = "linear", alpha: float = 1.0
) -> sp.csr_matrix:
    """Transformed float32 CSR copy of ``matrix`` (or the matrix itself when nothing changes)."""
    if kind not in CONFIDENCES:
        raise ValueError(f"confidence must be one of {CONFIDENCES}, got {kind!r}")
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    if kind == "linear" and alpha == 1.0 and matrix.dtype == np.float32:
        return matrix
    out = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    if kind == "linear":
        out.data *= np.float32(alpha)
    elif kind == "log1p":
        out.data = np.log1p(np.float32(alpha) * out.data).astype(np.float32)
    else:
        out.data = np.ones_like(out.data)
    return out


def row_normalize(matrix: sp.csr_matrix, power: float = 1.0) -> sp.csr_matrix:
    """Rows divided by (row sum) ** power; empty rows stay empty."""
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    scale = np.zeros_like(sums, dtype=np.float64)
    np.power(sums, -power, out=scale, where=sums > 0)
    return sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ matrix, dtype=np.float32)
