"""Metric code against small cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.evaluation.metrics import (
    customer_metrics,
    evaluate_rankings,
    hit_matrix,
    segment_labels,
)

# customer 0: recommended [2, 0, 5, 1], relevant {0, 1, 3}  -> hits [0, 1, 0, 1]
# customer 1: recommended [4, -1, -1, -1], relevant {4}      -> hits [1, 0, 0, 0]
RECOMMENDED = np.array([[2, 0, 5, 1], [4, -1, -1, -1]])
RELEVANT = sp.csr_matrix((np.ones(4), ([0, 0, 0, 1], [0, 1, 3, 4])), shape=(2, 6), dtype=np.float32)
POPULARITY = np.array([0.5, 0.25, 0.5, 0.1, 0.125, 0.25])


def test_hit_matrix_marks_relevant_and_ignores_padding() -> None:
    hits = hit_matrix(RECOMMENDED, RELEVANT)
    assert hits.tolist() == [[False, True, False, True], [True, False, False, False]]


def test_customer_metrics_at_2_by_hand() -> None:
    hits = hit_matrix(RECOMMENDED, RELEVANT)
    m = customer_metrics(hits, np.array([3, 1]), k=2)
    assert m["precision"] == pytest.approx([1 / 2, 1 / 2])
    assert m["recall"] == pytest.approx([1 / 3, 1.0])
    # customer 0: one hit at rank 1 -> DCG 1/log2(3); ideal over min(3, 2) = 2 positions
    ndcg0 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert m["ndcg"] == pytest.approx([ndcg0, 1.0])
    # AP@2: precision@2 = 1/2 at the hit, divided by min(3, 2)
    assert m["map"] == pytest.approx([0.25, 1.0])
    assert m["hit_rate"] == pytest.approx([1.0, 1.0])


def test_customer_metrics_at_4_by_hand() -> None:
    hits = hit_matrix(RECOMMENDED, RELEVANT)
    m = customer_metrics(hits, np.array([3, 1]), k=4)
    assert m["precision"] == pytest.approx([2 / 4, 1 / 4])
    assert m["recall"] == pytest.approx([2 / 3, 1.0])
    dcg0 = 1 / math.log2(3) + 1 / math.log2(5)
    idcg0 = 1 + 1 / math.log2(3) + 1 / math.log2(4)  # min(|test|=3, K=4) positions
    assert m["ndcg"] == pytest.approx([dcg0 / idcg0, 1.0])
    assert m["map"] == pytest.approx([(1 / 2 + 2 / 4) / 3, 1.0])


def test_no_hits_give_zero() -> None:
    hits = hit_matrix(np.array([[1, 2, 3]]), sp.csr_matrix(([1.0], ([0], [0])), shape=(1, 4)))
    m = customer_metrics(hits, np.array([1]), k=3)
    assert all(v[0] == 0.0 for v in m.values())


def test_evaluate_rankings_means_curves_and_catalog_metrics() -> None:
    res = evaluate_rankings(
        RECOMMENDED,
        RELEVANT,
        item_popularity=POPULARITY,
        history_length=np.array([3, 30]),
        k=2,
        ks=(1, 2, 4),
        segment_edges=(1, 10, 25),
    )
    ndcg0 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert res.metrics["ndcg"] == pytest.approx((ndcg0 + 1.0) / 2)
    assert res.metrics["recall"] == pytest.approx((1 / 3 + 1) / 2)
    assert res.metrics["map"] == pytest.approx((0.25 + 1) / 2)
    assert res.curves["precision"][1] == pytest.approx(0.5)  # customer 0 misses at rank 0
    assert res.curves["hit_rate"][1] == pytest.approx(0.5)
    # top-2 lists recommend items {2, 0, 4}: 3 of 6 catalog items
    assert res.metrics["coverage"] == pytest.approx(0.5)
    assert res.metrics["novelty"] == pytest.approx((1 + 1 + 3) / 3)  # -log2(.5,.5,.125)
    assert res.metrics["popularity_bias"] == pytest.approx((0.5 + 0.5 + 0.125) / 3)
    assert res.curves["coverage"][4] == pytest.approx(5 / 6)  # {2, 0, 5, 1, 4}; -1 is padding
    assert res.segments["1-9"]["ndcg"] == pytest.approx(ndcg0)
    assert res.segments["25+"]["ndcg"] == pytest.approx(1.0)
    assert res.n_customers == 2
    flat = res.flat("test_")
    assert flat["test_ndcg_at_2"] == res.metrics["ndcg"]
    assert flat["test_recall_at_4"] == pytest.approx((2 / 3 + 1) / 2)


def test_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="relevant rows"):
        hit_matrix(RECOMMENDED, RELEVANT[:1])
    with pytest.raises(ValueError, match="top-10"):
        evaluate_rankings(RECOMMENDED, RELEVANT, item_popularity=POPULARITY, k=10, ks=(10,))
    with pytest.raises(ValueError, match="at least one relevant"):
        customer_metrics(np.zeros((1, 2), dtype=bool), np.array([0]), k=2)


def test_segment_labels() -> None:
    labels = segment_labels(np.array([0, 1, 9, 10, 24, 25, 400]), (1, 10, 25))
    assert labels.tolist() == ["<1", "1-9", "1-9", "10-24", "10-24", "25+", "25+"]
