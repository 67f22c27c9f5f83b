"""Popularity: global and trending lists, overall and per item feature (e.g. category).

- ``kind="global"``: an item's score is the sum of its (confidence-transformed) interaction
  weights; ``confidence="binary"`` makes it the number of distinct customers.
- ``kind="trending"``: the same sum with a recency decay. Pass ``timestamps`` to ``fit`` (a CSR
  matrix with the same stored entries as ``interactions`` holding each interaction's last
  timestamp in seconds) and every weight is multiplied by ``0.5 ** (age / half_life_days)``,
  age measured from ``reference_time`` (default: the newest timestamp). Without timestamps the
  interactions are taken as already decay-weighted (``features.interactions`` with
  ``half_life_days``) and trending equals global over that matrix.

Everybody gets the same list minus their excluded items; ``similar_items`` returns the most
popular other items. ``top_per_feature`` gives per-category lists when item features were
given to ``fit``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

import numpy as np
import scipy.sparse as sp

from recsys.models.base import RecommenderBase
from recsys.models.confidence import apply_confidence
from recsys.models.ranking import drop_excluded, max_row_nnz, one_hot, pad, topn_sparse

KINDS = ("global", "trending")
SECONDS_PER_DAY = 86_400.0


class Popularity(RecommenderBase):
    name = "popularity"

    def __init__(
        self,
        kind: str = "global",
        half_life_days: float = 7.0,
        reference_time: float | None = None,
        confidence: str = "linear",
        alpha: float = 1.0,
    ) -> None:
        self.kind = kind
        self.half_life_days = half_life_days
        self.reference_time = reference_time
        self.confidence = confidence
        self.alpha = alpha

    def fit(
        self,
        interactions: sp.csr_matrix,
        item_features: sp.csr_matrix | None = None,
        customer_features: sp.csr_matrix | None = None,
        timestamps: sp.csr_matrix | None = None,
    ) -> Self:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        matrix = apply_confidence(
            self._check_interactions(interactions), self.confidence, self.alpha
        )
        weights = matrix.data.astype(np.float64)
        if self.kind == "trending" and timestamps is not None:
            weights = weights * self._decay(matrix, timestamps)
        scores = np.bincount(matrix.indices, weights=weights, minlength=matrix.shape[1])
        self.scores_ = scores.astype(np.float32)
        # ties broken by item index so the order is deterministic
        self.order_ = np.lexsort((np.arange(len(scores)), -scores)).astype(np.int32)
        self.item_features_ = (
            sp.csc_matrix(item_features, dtype=np.float32) if item_features is not None else None
        )
        self.n_customers_, self.n_items_ = matrix.shape
        return self

    def _decay(self, matrix: sp.csr_matrix, timestamps: sp.csr_matrix) -> np.ndarray:
        ts = sp.csr_matrix(timestamps, dtype=np.float64)
        ts.sort_indices()
        matrix.sort_indices()
        if (
            ts.shape != matrix.shape
            or ts.nnz != matrix.nnz
            or not np.array_equal(ts.indices, matrix.indices)
            or not np.array_equal(ts.indptr, matrix.indptr)
        ):
            raise ValueError("timestamps must have the same stored entries as interactions")
        if self.half_life_days <= 0:
            raise ValueError("half_life_days must be > 0")
        reference = self.reference_time if self.reference_time is not None else ts.data.max()
        age_days = np.maximum(reference - ts.data, 0.0) / SECONDS_PER_DAY
        return np.power(0.5, age_days / self.half_life_days)

    def _ranked(self, rows: int, n: int, exclude: sp.csr_matrix | None) -> tuple[np.ndarray, ...]:
        width = min(self.n_items, n + max_row_nnz(exclude))
        top = self.order_[:width]
        items = np.broadcast_to(top, (rows, width))
        scores = np.broadcast_to(self.scores_[top], (rows, width))
        if exclude is None:
            return pad(items, scores, n)
        return drop_excluded(items, scores, exclude, n)

    def recommend(
        self, rows: np.ndarray, n: int, exclude: sp.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        rows = self._check_rows(rows, exclude)
        return self._ranked(len(rows), n, exclude)  # type: ignore[return-value]

    def recommend_history(
        self,
        history: sp.csr_matrix,
        n: int,
        exclude: sp.csr_matrix | None = None,
        customer_features: sp.csr_matrix | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        history, exclude = self._check_history(history, exclude)
        return self._ranked(history.shape[0], n, exclude)  # type: ignore[return-value]

    def similar_items(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        items = self._check_items(items)
        return self._ranked(len(items), n, one_hot(items, self.n_items))  # type: ignore[return-value]

    def top_per_feature(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-n items per item-feature column (e.g. per category): arrays (n_features, n)."""
        self._check_fitted()
        if self.item_features_ is None:
            raise ValueError("fit() was given no item_features; per-feature lists need them")
        features = sp.csr_matrix(self.item_features_.T)
        features.data = np.ones_like(features.data)
        scores = sp.csr_matrix(features @ sp.diags(self.scores_ + np.float32(1e-12)))
        return topn_sparse(scores, n)

    def _save_state(self, path: Path) -> None:
        np.savez(
            path / "popularity.npz",
            scores=self.scores_,
            order=self.order_,
            shape=np.array([self.n_customers_, self.n_items_]),
        )
        if self.item_features_ is not None:
            sp.save_npz(path / "item_features.npz", self.item_features_)

    def _load_state(self, path: Path) -> None:
        with np.load(path / "popularity.npz") as data:
            self.scores_ = data["scores"]
            self.order_ = data["order"]
            self.n_customers_, self.n_items_ = (int(v) for v in data["shape"])
        features = path / "item_features.npz"
        self.item_features_ = sp.csc_matrix(sp.load_npz(features)) if features.exists() else None
