"""ALS ``regularization="auto"``: the penalty scaled to the data's density."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.models import build
from recsys.models.base import RecommenderBase
from recsys.models.implicit_mf import ALS, AUTO_MAX, AUTO_MIN, auto_regularization
from tests.models.contract import ContractTests, block_matrix


class TestALSAuto(ContractTests):
    def make_model(self) -> RecommenderBase:
        return build("als", factors=8, iterations=5, num_threads=1)  # regularization "auto"


def test_auto_regularization_follows_density_within_the_item_mass() -> None:
    rng = np.random.default_rng(0)
    weights = rng.integers(1, 6, size=(2000, 40)).astype(np.float32)
    dense = sp.csr_matrix(weights * (rng.random((2000, 40)) < 0.05))
    assert auto_regularization(dense) == pytest.approx(1000 * dense.nnz / (2000 * 40))
    # few customers per item: a quarter of the mean item mass caps it
    light = sp.csr_matrix(dense[:100])
    mass = float(light.sum()) / 40
    assert auto_regularization(light) == pytest.approx(0.25 * mass)
    assert auto_regularization(light, alpha=2.0) == pytest.approx(0.5 * mass)
    sparse = sp.csr_matrix((rng.random((200, 2000)) < 0.0002).astype(np.float32))
    assert auto_regularization(sparse) == AUTO_MIN
    full = sp.csr_matrix(np.full((1000, 10), 5.0, dtype=np.float32))
    assert auto_regularization(full) == AUTO_MAX


def test_auto_is_resolved_at_fit_and_kept_on_save(tmp_path: Path) -> None:
    matrix = block_matrix()
    model = ALS(factors=8, iterations=3, num_threads=1).fit(matrix)
    assert model.regularization == "auto"  # the parameter as given
    assert model.regularization_ == auto_regularization(matrix)  # linear confidence, alpha 1
    assert ALS(regularization=2.5, factors=8, iterations=3).fit(matrix).regularization_ == 2.5
    loaded = RecommenderBase.load(model.save(tmp_path / "als"))
    assert isinstance(loaded, ALS) and loaded.regularization_ == model.regularization_
    history = matrix[:5]
    np.testing.assert_allclose(
        loaded.recommend_history(history, 5)[1], model.recommend_history(history, 5)[1], rtol=1e-5
    )
    with pytest.raises(ValueError, match="regularization"):
        ALS(regularization="high").fit(matrix)
