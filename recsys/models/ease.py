"""EASE (Steck 2019): closed-form item-item linear autoencoder with a zero diagonal.

``B = I - P diag(1 / diag(P))`` with ``P = (X^T X + diag(lambda))^-1`` and
``lambda_i = l2 + drop_p / (1 - drop_p) * (X^T X)_ii``. ``drop_p = 0`` is plain EASE;
``drop_p > 0`` adds the dropout-emphasis regulariser of EDLAE (Steck 2020), which penalises
popular items' weights more. The dense item x item solve costs O(items^3) time and
``items^2`` floats of memory, so fitting above ``max_items`` items is refused with an error.
Scores (``history @ B``) are batched dense products, ranked chunk by chunk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from recsys.models.history import HistoryScorer
from recsys.models.ranking import one_hot, topn_chunked, topn_dense

DTYPES = ("float32", "float64")


class EASE(HistoryScorer):
    name = "ease"

    def __init__(
        self,
        l2: float = 500.0,
        drop_p: float = 0.0,
        confidence: str = "linear",
        alpha: float = 1.0,
        dtype: str = "float32",
        max_items: int = 20_000,
    ) -> None:
        self.l2 = l2
        self.drop_p = drop_p
        self.confidence = confidence
        self.alpha = alpha
        self.dtype = dtype
        self.max_items = max_items

    def _check_params(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if not 0.0 <= self.drop_p < 1.0:
            raise ValueError(f"drop_p must be in [0, 1), got {self.drop_p}")

    def _learn(self, matrix: sp.csr_matrix) -> None:
        n_items = matrix.shape[1]
        if n_items > self.max_items:
            gb = n_items**2 * np.dtype(self.dtype).itemsize * 3 / 1e9
            raise ValueError(
                f"EASE needs a dense {n_items} x {n_items} solve (~{gb:.1f} GB); the catalog "
                f"has {n_items} items, above max_items={self.max_items}. Filter rare items "
                "(features.interactions min_item_support), raise max_items, or use ItemKNN/ALS."
            )
        gram = (matrix.T @ matrix).toarray().astype(self.dtype)
        diagonal = np.diag(gram).copy()
        penalty = self.l2 + self.drop_p / (1.0 - self.drop_p) * diagonal
        gram[np.diag_indices(n_items)] += penalty.astype(self.dtype)
        inverse = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
        weights = inverse / (-np.diag(inverse))
        weights[np.diag_indices(n_items)] = 0.0
        self.weights_ = np.ascontiguousarray(weights, dtype=np.float32)

    def _score(
        self, history: sp.csr_matrix, n: int, exclude: sp.csr_matrix | None
    ) -> tuple[np.ndarray, np.ndarray]:
        return topn_chunked(
            lambda part: history[part] @ self.weights_, history.shape[0], self.n_items, n, exclude
        )

    def similar_items(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        items = self._check_items(items)
        return topn_dense(self.weights_[items].copy(), n, one_hot(items, self.n_items))

    def _save_state(self, path: Path) -> None:
        super()._save_state(path)
        np.save(path / "weights.npy", self.weights_)

    def _load_state(self, path: Path) -> None:
        super()._load_state(path)
        self.weights_ = np.load(path / "weights.npy")
