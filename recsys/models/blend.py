"""Blend: fuse the rankings of several models with weights (tuned by the evaluation owner).

Each component ranks its top ``top_m`` items per customer (with the same ``exclude``); an
item's blended score is the weighted sum of its contributions:

- ``fusion="rrf"`` (reciprocal-rank fusion): ``weight / (rrf_k + rank)``, rank from 1;
- ``fusion="score"``: ``weight * (score - row min) / (row max - row min)`` over the component's
  top-m list (min-max per customer, so components on different scales mix).

Items absent from a component's top-m get nothing from it. Components are given as fitted or
unfitted models, or as specs ``{"name": ..., "params": {...}}`` for ``recsys.models.build``;
``fit`` fits them (all of them, or only the unfitted ones with ``fit_components=False``),
passing ``timestamps`` on to components that take it (``fit_timestamps``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from recsys.models.base import RecommenderBase
from recsys.models.ranking import topn_sparse

FUSIONS = ("rrf", "score")
ModelSpec = RecommenderBase | Mapping[str, Any]


def _spec(model: ModelSpec) -> dict[str, Any]:
    """``{"name", "params", ...}`` of a component, every hyper-parameter spelled out (other
    keys of a spec, e.g. a per-component feature config, are kept)."""
    if isinstance(model, RecommenderBase):
        return {"name": model.name, "params": model.get_params()}
    from recsys.models import build

    params = build(model["name"], **model.get("params", {})).get_params()
    return {**model, "params": params}


class Blend(RecommenderBase):
    name = "blend"
    fit_timestamps: ClassVar[bool] = True

    def __init__(
        self,
        models: Sequence[ModelSpec] = (),
        weights: Sequence[float] | None = None,
        fusion: str = "rrf",
        top_m: int = 100,
        rrf_k: float = 60.0,
        fit_components: bool = True,
    ) -> None:
        self.models = models
        self.weights = weights
        self.fusion = fusion
        self.top_m = top_m
        self.rrf_k = rrf_k
        self.fit_components = fit_components

    def get_params(self) -> dict[str, Any]:
        params = super().get_params()
        params["models"] = [_spec(m) for m in self.models]
        params["weights"] = None if self.weights is None else [float(w) for w in self.weights]
        return params

    def _weights(self) -> np.ndarray:
        count = len(self.models)
        weights = np.ones(count) if self.weights is None else np.asarray(self.weights, float)
        if weights.shape != (count,):
            raise ValueError(f"blend has {count} models but {weights.size} weights")
        if (weights < 0).any() or not np.isfinite(weights).all():
            raise ValueError("blend weights must be finite and >= 0")
        return weights

    def fit(
        self,
        interactions: sp.csr_matrix,
        item_features: sp.csr_matrix | None = None,
        customer_features: sp.csr_matrix | None = None,
        timestamps: sp.csr_matrix | None = None,
    ) -> Self:
        """Fit the components; ``timestamps`` goes to those whose class takes it."""
        from recsys.models import build

        if not self.models:
            raise ValueError("blend needs at least one model")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        self._weights()
        matrix = self._check_interactions(interactions)
        components = []
        for model in self.models:
            component = (
                model
                if isinstance(model, RecommenderBase)
                else build(model["name"], **model.get("params", {}))
            )
            if self.fit_components or not component.is_fitted:
                if timestamps is not None and component.fit_timestamps:
                    component.fit(  # type: ignore[call-arg]
                        matrix, item_features, customer_features, timestamps=timestamps
                    )
                else:
                    component.fit(matrix, item_features, customer_features)
            elif component.n_items != matrix.shape[1]:
                raise ValueError("a pre-fitted component was fitted on a different item set")
            components.append(component)
        self.components_ = components
        self.n_customers_, self.n_items_ = matrix.shape
        return self

    def _fuse(
        self, ranked: list[tuple[np.ndarray, np.ndarray]], rows: int, n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        weights = self._weights()
        all_rows, all_items, all_values = [], [], []
        for weight, (items, scores) in zip(weights, ranked, strict=True):
            valid = items >= 0
            if self.fusion == "rrf":
                ranks = np.arange(1, items.shape[1] + 1, dtype=np.float64)
                values = np.broadcast_to(weight / (self.rrf_k + ranks), items.shape)
            else:
                scores = scores.astype(np.float64)
                low = np.where(valid, scores, np.inf).min(axis=1, keepdims=True)
                high = np.where(valid, scores, -np.inf).max(axis=1, keepdims=True)
                spread = high > low
                scaled = (scores - low) / np.where(spread, high - low, 1.0)
                values = weight * np.where(spread, scaled, 1.0)
            row_index = np.broadcast_to(np.arange(rows)[:, None], items.shape)
            all_rows.append(row_index[valid])
            all_items.append(items[valid])
            all_values.append(values[valid])
        fused = sp.csr_matrix(
            (np.concatenate(all_values), (np.concatenate(all_rows), np.concatenate(all_items))),
            shape=(rows, self.n_items),
            dtype=np.float64,
        )
        return topn_sparse(fused, n)

    def recommend(
        self, rows: np.ndarray, n: int, exclude: sp.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        rows = self._check_rows(rows, exclude)
        m = max(n, self.top_m)
        ranked = [c.recommend(rows, m, exclude) for c in self.components_]
        return self._fuse(ranked, len(rows), n)

    def recommend_history(
        self,
        history: sp.csr_matrix,
        n: int,
        exclude: sp.csr_matrix | None = None,
        customer_features: sp.csr_matrix | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        history, exclude = self._check_history(history, exclude)
        m = max(n, self.top_m)
        ranked = [
            c.recommend_history(history, m, exclude, customer_features) for c in self.components_
        ]
        return self._fuse(ranked, history.shape[0], n)

    def similar_items(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        items = self._check_items(items)
        m = max(n, self.top_m)
        return self._fuse([c.similar_items(items, m) for c in self.components_], len(items), n)

    def _save_state(self, path: Path) -> None:
        for i, component in enumerate(self.components_):
            component.save(path / f"component_{i}")

    def _load_state(self, path: Path) -> None:
        self.components_ = [
            RecommenderBase.load(path / f"component_{i}") for i in range(len(self.models))
        ]
        self.models = list(self.components_)
        self.n_customers_ = int(getattr(self.components_[0], "n_customers_", 0))
        self.n_items_ = self.components_[0].n_items
