"""The contract every model is held to (cf. implicit's tests/recommender_base_test.py).

A model's test class inherits ``ContractTests`` and defines ``make_model()``; the data is a
two-group block matrix: even customers interact with even items, odd with odd.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.models import build
from recsys.models.base import MANIFEST, RecommenderBase

N_CUSTOMERS, N_ITEMS = 60, 40


def block_matrix(seed: int = 0, density: float = 0.6) -> sp.csr_matrix:
    """Customers interact with a random ~density share of the items of their own parity."""
    rng = np.random.default_rng(seed)
    same = (np.arange(N_CUSTOMERS)[:, None] % 2) == (np.arange(N_ITEMS)[None, :] % 2)
    dense = same & (rng.random((N_CUSTOMERS, N_ITEMS)) < density)
    weights = rng.integers(1, 4, size=dense.shape).astype(np.float32)
    return sp.csr_matrix(np.where(dense, weights, 0.0).astype(np.float32))


def item_features() -> sp.csr_matrix:
    """Two features: 'even' and 'odd' (think: category)."""
    parity = np.arange(N_ITEMS) % 2
    return sp.csr_matrix(np.eye(2, dtype=np.float32)[parity])


def check_result(items: np.ndarray, scores: np.ndarray, rows: int, n: int) -> None:
    assert items.shape == (rows, n) and scores.shape == (rows, n)
    assert items.dtype == np.int32 and scores.dtype == np.float32
    padded = items == -1
    assert np.array_equal(padded, np.isneginf(scores))
    assert ((items >= 0) | padded).all() and (items < N_ITEMS).all()
    # padding only at the end, scores sorted descending, no repeated item in a row
    assert (np.diff(padded.astype(int), axis=1) >= 0).all()
    valid_pairs = ~padded[:, 1:]
    assert (scores[:, :-1][valid_pairs] >= scores[:, 1:][valid_pairs] - 1e-6).all()
    for row in items:
        kept = row[row >= 0]
        assert len(np.unique(kept)) == len(kept)


class ContractTests:
    """Inherit and define ``make_model``; set ``personalised = False`` for non-personal models."""

    personalised: ClassVar[bool] = True
    #: fold-in of a known customer's own history reproduces ``recommend`` exactly
    exact_fold_in: ClassVar[bool] = False

    def make_model(self) -> RecommenderBase:
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def data(cls) -> sp.csr_matrix:
        return block_matrix()

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, data: sp.csr_matrix) -> RecommenderBase:
        return cls().make_model().fit(data, item_features=item_features())

    # ---- fit --------------------------------------------------------------------------------
    def test_fit_returns_self(self, data: sp.csr_matrix) -> None:
        model = self.make_model()
        assert model.fit(data) is model
        assert model.n_items == N_ITEMS

    def test_unfitted_model_refuses_to_recommend(self) -> None:
        with pytest.raises(RuntimeError, match="not fitted"):
            self.make_model().recommend(np.arange(2), 5)

    # ---- recommend --------------------------------------------------------------------------
    def test_recommend_shapes_and_exclusion(
        self, fitted: RecommenderBase, data: sp.csr_matrix
    ) -> None:
        rows = np.arange(0, N_CUSTOMERS, 3)
        items, scores = fitted.recommend(rows, 5, exclude=data[rows])
        check_result(items, scores, len(rows), 5)
        assert (items[:, 0] >= 0).all()
        for row, recs in zip(rows, items, strict=True):
            assert not set(recs[recs >= 0]) & set(data[row].indices)

    def test_recommend_without_exclude(self, fitted: RecommenderBase) -> None:
        items, scores = fitted.recommend(np.array([1, 2]), 5)
        check_result(items, scores, 2, 5)
        assert (items >= 0).all()

    def test_exclude_other_than_history(self, fitted: RecommenderBase, data: sp.csr_matrix) -> None:
        rows = np.array([0, 1])
        top, _ = fitted.recommend(rows, 3)
        exclude = sp.csr_matrix(
            (np.ones(6, dtype=np.float32), top.ravel(), [0, 3, 6]), shape=(2, N_ITEMS)
        )
        items, scores = fitted.recommend(rows, 5, exclude=exclude)
        check_result(items, scores, 2, 5)
        for recs, banned in zip(items, top, strict=True):
            assert not set(recs) & set(banned)

    def test_pads_when_fewer_items_than_n(
        self, fitted: RecommenderBase, data: sp.csr_matrix
    ) -> None:
        rows = np.arange(4)
        items, scores = fitted.recommend(rows, N_ITEMS + 5, exclude=data[rows])
        check_result(items, scores, 4, N_ITEMS + 5)
        assert (items[:, N_ITEMS - data[rows].getnnz(axis=1).min() :] == -1).all()

    def test_bad_input_is_a_clear_error(self, fitted: RecommenderBase, data: sp.csr_matrix) -> None:
        with pytest.raises(IndexError):
            fitted.recommend(np.array([N_CUSTOMERS]), 5)
        with pytest.raises(ValueError, match="exclude"):
            fitted.recommend(np.arange(3), 5, exclude=data[:2])
        with pytest.raises(ValueError, match="history"):
            fitted.recommend_history(sp.csr_matrix((2, N_ITEMS + 1)), 5)
        with pytest.raises(IndexError):
            fitted.similar_items(np.array([N_ITEMS]), 5)

    # ---- fold-in ----------------------------------------------------------------------------
    def test_fold_in_returns_sensible_items(self, fitted: RecommenderBase) -> None:
        # two new customers: one with 6 even items, one with 6 odd items
        history = sp.csr_matrix(
            (np.ones(12, dtype=np.float32), np.r_[0:12:2, 1:12:2], [0, 6, 12]),
            shape=(2, N_ITEMS),
        )
        items, scores = fitted.recommend_history(history, 5)
        check_result(items, scores, 2, 5)
        assert not set(items[0]) & set(history[0].indices)
        assert not set(items[1]) & set(history[1].indices)
        if self.personalised:
            assert (items[0] % 2 == 0).sum() >= 4, items
            assert (items[1] % 2 == 1).sum() >= 4, items
        else:
            known, _ = fitted.recommend(np.array([0, 1]), 5, exclude=history)
            assert np.array_equal(items, known)

    def test_fold_in_of_known_history(self, fitted: RecommenderBase, data: sp.csr_matrix) -> None:
        rows = np.arange(6)
        items, scores = fitted.recommend_history(data[rows], 5)
        check_result(items, scores, len(rows), 5)
        if self.exact_fold_in:
            known, known_scores = fitted.recommend(rows, 5, exclude=data[rows])
            assert np.array_equal(items, known)
            np.testing.assert_allclose(scores, known_scores, rtol=1e-5)

    # ---- similar items ----------------------------------------------------------------------
    def test_similar_items_never_self(self, fitted: RecommenderBase) -> None:
        query = np.arange(N_ITEMS)
        items, scores = fitted.similar_items(query, 5)
        check_result(items, scores, N_ITEMS, 5)
        assert not (items == query[:, None]).any()
        if self.personalised:
            same = (items % 2 == query[:, None] % 2) & (items >= 0)
            assert same[:, :3].mean() >= 0.8

    # ---- persistence and parameters ---------------------------------------------------------
    def test_save_load_gives_identical_recommendations(
        self, fitted: RecommenderBase, data: sp.csr_matrix, tmp_path: Path
    ) -> None:
        fitted.save(tmp_path / "model", id_map_fingerprint="abc123")
        manifest = json.loads((tmp_path / "model" / MANIFEST).read_text())
        assert manifest["class"].endswith(type(fitted).__name__)
        assert manifest["id_map_fingerprint"] == "abc123"
        assert {"numpy", "scipy", "python"} <= set(manifest["libraries"])
        assert set(type(fitted).libraries) <= set(manifest["libraries"])
        loaded = RecommenderBase.load(tmp_path / "model")
        assert type(loaded) is type(fitted)
        assert loaded.get_params() == fitted.get_params()
        rows = np.arange(10)
        for before, after in (
            (fitted.recommend(rows, 7, data[rows]), loaded.recommend(rows, 7, data[rows])),
            (fitted.recommend_history(data[rows], 7), loaded.recommend_history(data[rows], 7)),
            (fitted.similar_items(rows, 4), loaded.similar_items(rows, 4)),
        ):
            np.testing.assert_array_equal(before[0], after[0])
            np.testing.assert_array_equal(before[1], after[1])

    def test_params_round_trip(self) -> None:
        model = self.make_model()
        params = model.get_params()
        json.dumps(params)
        rebuilt = build(model.name, **params)
        assert type(rebuilt) is type(model)
        assert rebuilt.get_params() == params
        with pytest.raises(ValueError, match="no hyper-parameter"):
            model.set_params(not_a_parameter=1)
