"""Models that score a customer from their own (confidence-weighted) history (EASE, ItemKNN,
RP3beta): ``history @ W`` for a learned item x item matrix ``W``.

Such a model keeps its weighted training matrix as ``train_``: ``recommend`` scores a known
customer's training row and fold-in scores the given history, both through the model's
``_score``, so a known customer's own history folds in to exactly its ``recommend``.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Self

import numpy as np
import scipy.sparse as sp

from recsys.models.base import RecommenderBase
from recsys.models.confidence import apply_confidence


class HistoryScorer(RecommenderBase):
    """fit / recommend / fold-in / train-matrix persistence; subclasses learn and score."""

    confidence: str
    alpha: float

    def _weighted(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        return apply_confidence(matrix, self.confidence, self.alpha)

    def _check_params(self) -> None:
        """Validate hyper-parameters before anything is read (``fit`` calls it first)."""

    @abstractmethod
    def _learn(self, matrix: sp.csr_matrix) -> None:
        """Learn the model's state from the weighted training matrix."""

    @abstractmethod
    def _score(
        self, history: sp.csr_matrix, n: int, exclude: sp.csr_matrix | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-n for weighted history rows."""

    def fit(
        self,
        interactions: sp.csr_matrix,
        item_features: sp.csr_matrix | None = None,
        customer_features: sp.csr_matrix | None = None,
    ) -> Self:
        self._check_params()
        matrix = self._weighted(self._check_interactions(interactions))
        self._learn(matrix)
        self.train_ = matrix
        self.n_customers_, self.n_items_ = matrix.shape
        return self

    def recommend(
        self, rows: np.ndarray, n: int, exclude: sp.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        rows = self._check_rows(rows, exclude)
        return self._score(self.train_[rows], n, exclude)

    def recommend_history(
        self,
        history: sp.csr_matrix,
        n: int,
        exclude: sp.csr_matrix | None = None,
        customer_features: sp.csr_matrix | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        history, exclude = self._check_history(history, exclude)
        return self._score(self._weighted(history), n, exclude)

    def _save_state(self, path: Path) -> None:
        sp.save_npz(path / "train.npz", self.train_)

    def _load_state(self, path: Path) -> None:
        self.train_ = sp.csr_matrix(sp.load_npz(path / "train.npz"))
        self.n_customers_, self.n_items_ = self.train_.shape
