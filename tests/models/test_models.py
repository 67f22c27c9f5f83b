"""Every model held to the contract, plus model-specific checks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.models import build
from recsys.models.base import RecommenderBase
from recsys.models.popularity import Popularity
from tests.models.contract import N_CUSTOMERS, N_ITEMS, ContractTests, block_matrix


class TestPopularity(ContractTests):
    personalised = False

    def make_model(self) -> RecommenderBase:
        return build("popularity")


class TestTrending(ContractTests):
    personalised = False

    def make_model(self) -> RecommenderBase:
        return build("popularity", kind="trending", half_life_days=3.0)


class TestItemKNNCosine(ContractTests):
    exact_fold_in = True

    def make_model(self) -> RecommenderBase:
        return build("itemknn", similarity="cosine", k=20, num_threads=1)


class TestItemKNNBM25(ContractTests):
    exact_fold_in = True

    def make_model(self) -> RecommenderBase:
        return build("itemknn", similarity="bm25", k=20, confidence="log1p", num_threads=1)


class TestItemKNNTFIDF(ContractTests):
    exact_fold_in = True

    def make_model(self) -> RecommenderBase:
        return build("itemknn", similarity="tfidf", k=20, num_threads=1)


class TestRP3beta(ContractTests):
    exact_fold_in = True

    def make_model(self) -> RecommenderBase:
        return build("rp3beta", alpha=0.8, beta=0.3, k=20)


class TestALS(ContractTests):
    def make_model(self) -> RecommenderBase:
        return build("als", factors=8, iterations=5, regularization=0.1, num_threads=1)


class TestBPR(ContractTests):
    def make_model(self) -> RecommenderBase:
        return build("bpr", factors=8, iterations=60, learning_rate=0.05, num_threads=1)


class TestLightFMWarp(ContractTests):
    def make_model(self) -> RecommenderBase:
        return build("lightfm", loss="warp", no_components=8, epochs=15, num_threads=1)


class TestLightFMBPR(ContractTests):
    def make_model(self) -> RecommenderBase:
        return build("lightfm", loss="bpr", no_components=8, epochs=20, num_threads=1)


class TestEASE(ContractTests):
    exact_fold_in = True

    def make_model(self) -> RecommenderBase:
        return build("ease", l2=5.0)


class TestEASEDropout(ContractTests):
    exact_fold_in = True

    def make_model(self) -> RecommenderBase:
        return build("ease", l2=5.0, drop_p=0.3, dtype="float64", confidence="binary")


class TestBlendRRF(ContractTests):
    def make_model(self) -> RecommenderBase:
        return build(
            "blend",
            models=[{"name": "ease", "params": {"l2": 5.0}}, {"name": "rp3beta"}],
            weights=[1.0, 0.5],
            top_m=10,
        )


class TestBlendScore(ContractTests):
    def make_model(self) -> RecommenderBase:
        return build(
            "blend",
            models=[{"name": "itemknn", "params": {"k": 10}}, {"name": "popularity"}],
            weights=[1.0, 0.2],
            fusion="score",
            top_m=10,
        )


# ---- model-specific -------------------------------------------------------------------------


def test_build_rejects_unknown_names_and_parameters() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        build("nope")
    with pytest.raises(ValueError, match="bad parameters"):
        build("als", factor=3)


def test_ease_refuses_catalog_above_max_items() -> None:
    with pytest.raises(ValueError, match="max_items=30"):
        build("ease", max_items=30).fit(block_matrix())


def test_ease_matches_closed_form() -> None:
    data = block_matrix()
    model = build("ease", l2=3.0, dtype="float64").fit(data)
    gram = (data.T @ data).toarray().astype(np.float64) + 3.0 * np.eye(N_ITEMS)
    inverse = np.linalg.inv(gram)
    expected = np.eye(N_ITEMS) - inverse / np.diag(inverse)
    np.testing.assert_allclose(model.weights_, expected, atol=1e-5)  # type: ignore[attr-defined]


def test_blend_with_one_weighted_component_keeps_its_ranking() -> None:
    data = block_matrix()
    ease = build("ease", l2=5.0).fit(data)
    knn = build("itemknn", k=10, num_threads=1).fit(data)
    blend = build(
        "blend", models=[ease, knn], weights=[1.0, 0.0], top_m=10, fit_components=False
    ).fit(data)
    rows = np.arange(8)
    expected, _ = ease.recommend(rows, 5, exclude=data[rows])
    items, _ = blend.recommend(rows, 5, exclude=data[rows])
    np.testing.assert_array_equal(items, expected)


def test_blend_weights_are_checked() -> None:
    data = block_matrix()
    with pytest.raises(ValueError, match="2 models but 3 weights"):
        build("blend", models=[{"name": "ease"}, {"name": "popularity"}], weights=[1, 1, 1]).fit(
            data
        )
    with pytest.raises(ValueError, match=">= 0"):
        build("blend", models=[{"name": "popularity"}], weights=[-1.0]).fit(data)


def test_blend_rrf_rewards_agreement() -> None:
    data = block_matrix()
    a = build("ease", l2=5.0).fit(data)
    b = build("rp3beta").fit(data)
    blend = build("blend", models=[a, b], top_m=20, fit_components=False).fit(data)
    rows = np.arange(4)
    items, scores = blend.recommend(rows, 3, exclude=data[rows])
    ea, _ = a.recommend(rows, 20, exclude=data[rows])
    eb, _ = b.recommend(rows, 20, exclude=data[rows])
    for r in range(len(rows)):
        rank = {int(i): k for k, i in enumerate(ea[r], 1)}
        rank_b = {int(i): k for k, i in enumerate(eb[r], 1)}
        top = int(items[r, 0])
        expected = 1 / (60 + rank.get(top, np.inf)) + 1 / (60 + rank_b.get(top, np.inf))
        assert scores[r, 0] == pytest.approx(expected, rel=1e-5)


def test_trending_prefers_recent_interactions() -> None:
    # item 0: many old interactions; item 1: fewer, recent ones
    rows = np.r_[np.arange(10), np.arange(4)]
    cols = np.r_[np.zeros(10, int), np.ones(4, int)]
    day = 86_400.0
    stamps = np.r_[np.full(10, 0.0), np.full(4, 60 * day)]
    data = sp.csr_matrix((np.ones(14, dtype=np.float32), (rows, cols)), shape=(10, 3))
    times = sp.csr_matrix((stamps, (rows, cols)), shape=(10, 3))
    global_top, _ = build("popularity").fit(data).recommend(np.array([9]), 2)
    trending = Popularity(kind="trending", half_life_days=7.0)
    trend_top, _ = trending.fit(data, timestamps=times).recommend(np.array([9]), 2)
    assert global_top[0, 0] == 0 and trend_top[0, 0] == 1
    with pytest.raises(ValueError, match="same stored entries"):
        trending.fit(data, timestamps=times[:, [1, 0, 2]])


def test_popularity_per_feature_lists() -> None:
    data = block_matrix()
    parity = np.arange(N_ITEMS) % 2
    features = sp.csr_matrix(np.eye(2, dtype=np.float32)[parity])
    items, _ = Popularity().fit(data, item_features=features).top_per_feature(5)
    assert items.shape == (2, 5)
    assert (items[0] % 2 == 0).all() and (items[1] % 2 == 1).all()
    with pytest.raises(ValueError, match="item_features"):
        Popularity().fit(data).top_per_feature(5)


def test_lightfm_fold_in_through_customer_features() -> None:
    data = block_matrix()
    customers = sp.csr_matrix(np.eye(2, dtype=np.float32)[np.arange(N_CUSTOMERS) % 2])
    model = build("lightfm", no_components=8, epochs=20, num_threads=1)
    model.fit(data, customer_features=customers)
    empty = sp.csr_matrix((2, N_ITEMS), dtype=np.float32)
    items, _ = model.recommend_history(empty, 5, customer_features=customers[:2])
    assert (items[0] % 2 == 0).sum() >= 4 and (items[1] % 2 == 1).sum() >= 4
    with pytest.raises(ValueError, match="customer_features"):
        model.recommend_history(empty, 5, customer_features=customers[:2, :1])


def test_lightfm_item_features_place_cold_items() -> None:
    data = block_matrix().tolil()
    data[:, 38] = 0  # item 38 (even) has no interactions, only its 'even' feature
    data = data.tocsr()
    data.eliminate_zeros()
    features = sp.csr_matrix(np.eye(2, dtype=np.float32)[np.arange(N_ITEMS) % 2])
    model = build("lightfm", no_components=8, epochs=20, num_threads=1)
    model.fit(data, item_features=features)
    similar, _ = model.similar_items(np.array([38]), 5)
    assert (similar[0] % 2 == 0).sum() >= 4


def test_models_reject_bad_matrices() -> None:
    bad = block_matrix()
    bad.data[0] = -1.0
    with pytest.raises(ValueError, match="non-negative"):
        build("ease").fit(bad)
    with pytest.raises(TypeError, match="scipy.sparse"):
        build("popularity").fit(np.ones((3, 3)))  # type: ignore[arg-type]
