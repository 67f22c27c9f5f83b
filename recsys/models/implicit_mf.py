"""Matrix factorisation from ``implicit`` (CPU): ALS and BPR.

``recommend`` is implicit's own batched ``recommend`` (its C++ top-k with the exclude CSR as
the per-customer filter); the wrapper only validates input and marks filtered cells as padding.
Fold-in: ALS solves the new customers' factors with implicit's ``recalculate_user`` on the
batch; BPR (which has no such solver) uses the confidence-weighted mean of the history's item
factors. Export ``OPENBLAS_NUM_THREADS=1`` (fit also limits BLAS threads to 1 itself).

ALS ``regularization="auto"`` (the default) scales the L2 penalty to the data:
``clip(min(AUTO_SCALE * density, AUTO_MASS_SHARE * mean item mass), AUTO_MIN, AUTO_MAX)``,
the item mass being an item's summed confidence (``alpha`` times the weighted column sum). A
fixed penalty that suits a large sparse catalog overfits a small dense one: on a grocery-like
shop (170 items, density 0.05) regularization 1.0 ranks below popularity while 50 beats it;
on MovieLens and the synthetic ``small`` shop (density 0.016) 16-20 is about best and 100
collapses to one ranking for everybody, as does a penalty above ~half the mean item mass
(the mass cap). The rule is empirical (those datasets; figures in the report of issue 11).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recsys.models.base import RecommenderBase
from recsys.models.confidence import apply_confidence, row_normalize
from recsys.models.ranking import drop_excluded, one_hot, pad


class _ImplicitMF(RecommenderBase):
    """Shared state and scoring of implicit's matrix-factorisation models."""

    libraries: ClassVar[tuple[str, ...]] = ("implicit",)
    num_threads: int
    confidence: str

    def _library_model(self) -> Any:
        raise NotImplementedError

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        """Factors (one row per customer) of customers unseen at training, from their history."""
        raise NotImplementedError

    def _weighted(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        return apply_confidence(matrix, self.confidence)

    def fit(
        self,
        interactions: sp.csr_matrix,
        item_features: sp.csr_matrix | None = None,
        customer_features: sp.csr_matrix | None = None,
    ) -> Self:
        matrix = self._weighted(self._check_interactions(interactions))
        model = self._library_model()
        with threadpool_limits(limits=1, user_api="blas"):
            model.fit(matrix, show_progress=False)
        self.model_ = model
        self.n_customers_, self.n_items_ = matrix.shape
        return self

    def _topk(
        self, factors: np.ndarray, n: int, exclude: sp.csr_matrix | None
    ) -> tuple[np.ndarray, np.ndarray]:
        from implicit.cpu.topk import topk

        k = min(n, self.n_items)
        items, scores = topk(
            self.model_.item_factors,
            np.ascontiguousarray(factors, dtype=self.model_.item_factors.dtype),
            k,
            filter_query_items=exclude,
            num_threads=self.num_threads,
        )
        return pad(items, scores, n)

    def recommend(
        self, rows: np.ndarray, n: int, exclude: sp.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        rows = self._check_rows(rows, exclude)
        if exclude is not None:
            exclude = sp.csr_matrix(exclude)
        items, scores = self.model_.recommend(
            rows,
            exclude,
            N=min(n, self.n_items),
            filter_already_liked_items=exclude is not None,
        )
        return pad(np.atleast_2d(items), np.atleast_2d(scores), n)

    def recommend_history(
        self,
        history: sp.csr_matrix,
        n: int,
        exclude: sp.csr_matrix | None = None,
        customer_features: sp.csr_matrix | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        history, exclude = self._check_history(history, exclude)
        return self._topk(self._fold_in(history), n, exclude)

    def similar_items(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        items = self._check_items(items)
        ids, scores = self.model_.similar_items(items, N=min(n + 1, self.n_items))
        return drop_excluded(
            np.atleast_2d(ids), np.atleast_2d(scores), one_hot(items, self.n_items), n
        )

    def _save_state(self, path: Path) -> None:
        np.savez(
            path / "factors.npz",
            user_factors=self.model_.user_factors,
            item_factors=self.model_.item_factors,
        )

    def _load_state(self, path: Path) -> None:
        model = self._library_model()
        with np.load(path / "factors.npz") as data:
            model.user_factors = data["user_factors"]
            model.item_factors = data["item_factors"]
        self.model_ = model
        self.n_customers_ = model.user_factors.shape[0]
        self.n_items_ = model.item_factors.shape[0]


AUTO = "auto"
AUTO_SCALE = 1000.0
"""``regularization="auto"``: penalty per unit of density (0.05 -> 50, 0.016 -> 16)..."""
AUTO_MASS_SHARE = 0.25
"""...at most this share of the mean confidence mass per item..."""
AUTO_MIN, AUTO_MAX = 1.0, 100.0
"""...and within these bounds."""


def auto_regularization(weighted: sp.csr_matrix, alpha: float = 1.0) -> float:
    """The ALS L2 penalty ``"auto"`` stands for (see module doc); ``weighted`` is the matrix
    after the model's confidence transform, ``alpha`` implicit's confidence scale."""
    n_rows, n_cols = weighted.shape
    if not n_rows or not n_cols:
        return AUTO_MIN
    density = weighted.nnz / (n_rows * n_cols)
    item_mass = alpha * float(weighted.sum()) / n_cols
    return float(
        np.clip(min(AUTO_SCALE * density, AUTO_MASS_SHARE * item_mass), AUTO_MIN, AUTO_MAX)
    )


class ALS(_ImplicitMF):
    """implicit's AlternatingLeastSquares; confidence = 1 + alpha * f(x), f = ``confidence``.

    ``regularization``: a number, or ``"auto"`` (scaled to the data's density; the value used
    is ``regularization_`` after ``fit``).
    """

    name = "als"

    def __init__(
        self,
        factors: int = 64,
        regularization: float | str = AUTO,
        alpha: float = 1.0,
        iterations: int = 15,
        use_cg: bool = True,
        confidence: str = "linear",
        num_threads: int = 0,
        random_state: int | None = 0,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.use_cg = use_cg
        self.confidence = confidence
        self.num_threads = num_threads
        self.random_state = random_state

    def fit(
        self,
        interactions: sp.csr_matrix,
        item_features: sp.csr_matrix | None = None,
        customer_features: sp.csr_matrix | None = None,
    ) -> Self:
        if self.regularization == AUTO:
            weighted = self._weighted(self._check_interactions(interactions))
            self.regularization_ = auto_regularization(weighted, self.alpha)
        elif isinstance(self.regularization, str):
            raise ValueError(f"regularization must be a number or {AUTO!r}")
        else:
            self.regularization_ = float(self.regularization)
        return super().fit(interactions, item_features, customer_features)

    def _library_model(self) -> Any:
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(
            factors=self.factors,
            regularization=self.regularization_,
            alpha=self.alpha,
            iterations=self.iterations,
            use_cg=self.use_cg,
            num_threads=self.num_threads,
            random_state=self.random_state,
        )

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        weighted = self._weighted(history)
        with threadpool_limits(limits=1, user_api="blas"):
            factors = self.model_.recalculate_user(np.arange(history.shape[0]), weighted)
        return np.atleast_2d(factors)

    def _save_state(self, path: Path) -> None:
        super()._save_state(path)
        (path / "regularization.json").write_text(json.dumps(self.regularization_))

    def _load_state(self, path: Path) -> None:
        saved = path / "regularization.json"
        if saved.exists():
            self.regularization_ = float(json.loads(saved.read_text()))
        else:  # saved before "auto" existed: the parameter was the number used
            self.regularization_ = float(self.regularization)
        super()._load_state(path)


class BPR(_ImplicitMF):
    """implicit's BayesianPersonalizedRanking (learns from which entries are stored)."""

    name = "bpr"

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        iterations: int = 100,
        verify_negative_samples: bool = True,
        confidence: str = "linear",
        num_threads: int = 0,
        random_state: int | None = 0,
    ) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.verify_negative_samples = verify_negative_samples
        self.confidence = confidence
        self.num_threads = num_threads
        self.random_state = random_state

    def _library_model(self) -> Any:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        return BayesianPersonalizedRanking(
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.iterations,
            verify_negative_samples=self.verify_negative_samples,
            num_threads=self.num_threads,
            random_state=self.random_state,
        )

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        item_factors = self.model_.item_factors
        # implicit's BPR keeps the item bias in the last factor and a constant 1 for users
        factors = np.asarray(row_normalize(self._weighted(history)) @ item_factors)
        factors[:, -1] = 1.0
        return factors
