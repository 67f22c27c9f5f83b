"""LightFM (package ``lightfm-next``, import name ``lightfm``): WARP / BPR with side features.

Item and customer features (CSR, one row per item / customer) are appended to per-item and
per-customer identity features and rows are normalised to sum 1, as the LightFM docs advise.
An item with no interactions still gets a representation from its features (the hybrid path
for new items in the catalog). Fold-in for a customer unseen at training: through their
``customer_features`` when the model was fitted with customer features, else as the
confidence-weighted mean of their history's item representations.

After ``fit`` the library model is reduced to numpy arrays (item and customer representations,
customer-feature embeddings), so recommendations are dense matrix products ranked in chunks;
scores omit the per-customer bias, which does not change the ranking.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import scipy.sparse as sp

from recsys.models.base import RecommenderBase
from recsys.models.confidence import apply_confidence, row_normalize
from recsys.models.ranking import one_hot, topn_chunked, topn_dense

LOSSES = ("warp", "bpr", "warp-kos", "logistic")


def _with_identity(features: sp.spmatrix | None, n: int) -> sp.csr_matrix:
    """[identity | features] with rows summing to 1."""
    blocks: list[sp.spmatrix] = [sp.identity(n, dtype=np.float32, format="csr")]
    if features is not None:
        blocks.append(sp.csr_matrix(features, dtype=np.float32))
    return row_normalize(sp.csr_matrix(sp.hstack(blocks, format="csr"), dtype=np.float32))


class LightFM(RecommenderBase):
    name = "lightfm"
    libraries: ClassVar[tuple[str, ...]] = ("lightfm-next",)

    def __init__(
        self,
        loss: str = "warp",
        no_components: int = 64,
        learning_rate: float = 0.05,
        item_alpha: float = 0.0,
        user_alpha: float = 0.0,
        epochs: int = 30,
        max_sampled: int = 10,
        learning_schedule: str = "adagrad",
        use_weights: bool = True,
        confidence: str = "linear",
        num_threads: int = 2,
        random_state: int | None = 0,
    ) -> None:
        self.loss = loss
        self.no_components = no_components
        self.learning_rate = learning_rate
        self.item_alpha = item_alpha
        self.user_alpha = user_alpha
        self.epochs = epochs
        self.max_sampled = max_sampled
        self.learning_schedule = learning_schedule
        self.use_weights = use_weights
        self.confidence = confidence
        self.num_threads = num_threads
        self.random_state = random_state

    def fit(
        self,
        interactions: sp.csr_matrix,
        item_features: sp.csr_matrix | None = None,
        customer_features: sp.csr_matrix | None = None,
    ) -> Self:
        from lightfm import LightFM as LibLightFM

        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        matrix = apply_confidence(self._check_interactions(interactions), self.confidence)
        n_customers, n_items = matrix.shape
        for what, feats, rows in (
            ("item_features", item_features, n_items),
            ("customer_features", customer_features, n_customers),
        ):
            if feats is not None and feats.shape[0] != rows:
                raise ValueError(f"{what} has {feats.shape[0]} rows; expected {rows}")
        user_feats = _with_identity(customer_features, n_customers)
        item_feats = _with_identity(item_features, n_items)
        coo = matrix.tocoo()
        ones = sp.coo_matrix((np.ones_like(coo.data), (coo.row, coo.col)), shape=matrix.shape)
        model = LibLightFM(
            loss=self.loss,
            no_components=self.no_components,
            learning_rate=self.learning_rate,
            item_alpha=self.item_alpha,
            user_alpha=self.user_alpha,
            max_sampled=self.max_sampled,
            learning_schedule=self.learning_schedule,
            random_state=self.random_state,
        )
        model.fit(
            ones,
            user_features=user_feats,
            item_features=item_feats,
            sample_weight=coo if self.use_weights else None,
            epochs=self.epochs,
            num_threads=self.num_threads,
        )
        item_bias, item_repr = model.get_item_representations(item_feats)
        _, user_repr = model.get_user_representations(user_feats)
        self.item_repr_ = np.ascontiguousarray(item_repr, dtype=np.float32)
        self.item_bias_ = np.asarray(item_bias, dtype=np.float32)
        self.user_repr_ = np.ascontiguousarray(user_repr, dtype=np.float32)
        # embeddings of the customer-feature columns (after the identity block), for fold-in
        self.customer_feature_repr_ = np.asarray(
            model.user_embeddings[n_customers:], dtype=np.float32
        )
        self.n_customers_, self.n_items_ = n_customers, n_items
        return self

    def _score(
        self, factors: np.ndarray, n: int, exclude: sp.csr_matrix | None
    ) -> tuple[np.ndarray, np.ndarray]:
        item_t = self.item_repr_.T
        return topn_chunked(
            lambda part: factors[part] @ item_t + self.item_bias_,
            factors.shape[0],
            self.n_items,
            n,
            exclude,
        )

    def recommend(
        self, rows: np.ndarray, n: int, exclude: sp.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        rows = self._check_rows(rows, exclude)
        return self._score(self.user_repr_[rows], n, exclude)

    def recommend_history(
        self,
        history: sp.csr_matrix,
        n: int,
        exclude: sp.csr_matrix | None = None,
        customer_features: sp.csr_matrix | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        history, exclude = self._check_history(history, exclude)
        n_feature_cols = self.customer_feature_repr_.shape[0]
        if customer_features is not None and n_feature_cols:
            if customer_features.shape != (history.shape[0], n_feature_cols):
                raise ValueError(
                    f"customer_features has shape {customer_features.shape}; expected "
                    f"({history.shape[0]}, {n_feature_cols}) as at fit"
                )
            feats = row_normalize(sp.csr_matrix(customer_features, dtype=np.float32))
            factors = np.asarray(feats @ self.customer_feature_repr_)
        else:
            weighted = apply_confidence(history, self.confidence)
            factors = np.asarray(row_normalize(weighted) @ self.item_repr_)
        return self._score(factors, n, exclude)

    def similar_items(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        items = self._check_items(items)
        norms = np.linalg.norm(self.item_repr_, axis=1)
        norms[norms == 0] = 1.0
        unit = self.item_repr_ / norms[:, None]
        return topn_dense(unit[items] @ unit.T, n, one_hot(items, self.n_items))

    def _save_state(self, path: Path) -> None:
        np.savez(
            path / "lightfm.npz",
            item_repr=self.item_repr_,
            item_bias=self.item_bias_,
            user_repr=self.user_repr_,
            customer_feature_repr=self.customer_feature_repr_,
        )

    def _load_state(self, path: Path) -> None:
        with np.load(path / "lightfm.npz") as data:
            self.item_repr_ = data["item_repr"]
            self.item_bias_ = data["item_bias"]
            self.user_repr_ = data["user_repr"]
            self.customer_feature_repr_ = data["customer_feature_repr"]
        self.n_customers_, self.n_items_ = self.user_repr_.shape[0], self.item_repr_.shape[0]
