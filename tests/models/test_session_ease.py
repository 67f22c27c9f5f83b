"""SessionEASE: the contract (fitted with event times) and its session-specific behaviour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from features.idmap import IdMap
from recsys.models import build
from recsys.models.base import RecommenderBase
from recsys.models.blend import Blend
from recsys.models.sequences import event_times, normalise_transitions
from recsys.models.session_ease import SessionEASE
from tests.models.contract import ContractTests, block_matrix, item_features

HOUR = 3600.0


def times_like(matrix: sp.csr_matrix, seed: int = 0) -> sp.csr_matrix:
    """Event times on the stored entries of ``matrix``: even customers in one sitting (minutes
    apart), odd customers over weeks."""
    rng = np.random.default_rng(seed)
    out = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    rows = np.repeat(np.arange(out.shape[0]), np.diff(out.indptr))
    spread = np.where(rows % 2 == 0, 600.0, 30 * 24 * HOUR)
    out.data = 1.6e9 + rng.random(out.nnz) * spread
    return out


class TestSessionEASE(ContractTests):
    exact_fold_in = False  # fold-in without times ranks by EASE alone

    def make_model(self) -> RecommenderBase:
        return build("session_ease", l2=5.0, seq_weight=1.0, window=3, recent=3)

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, data: sp.csr_matrix) -> RecommenderBase:
        model = cls().make_model()
        assert isinstance(model, SessionEASE)
        return model.fit(data, item_features=item_features(), timestamps=times_like(data))


def sequence_data() -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Customers 0..29 rate items 0..5 in one sitting, in the order 0, 1, 2, 3, 4, 5, except
    that the odd ones skip item 5. Customer 30 has items 0..3 (one sitting), customer 31 the
    same items over weeks. Item 5 always follows item 4; item 6 is liked by everyone at random
    positions, so EASE alone cannot tell the order."""
    rows, cols, times = [], [], []
    for c in range(30):
        seq = [0, 1, 2, 3, 4, 5] if c % 2 == 0 else [0, 1, 2, 3, 4]
        seq = seq[:]
        seq.insert(c % len(seq), 6)
        for pos, item in enumerate(seq):
            rows.append(c)
            cols.append(item)
            times.append(1e9 + c * 1e5 + pos * 60.0)
    for c, gap in ((30, 60.0), (31, 7 * 24 * HOUR)):
        for pos, item in enumerate([0, 1, 2, 3, 4]):
            rows.append(c)
            cols.append(item)
            times.append(2e9 + pos * gap)
    shape = (32, 8)
    interactions = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
    stamps = sp.csr_matrix((np.array(times), (rows, cols)), shape=shape, dtype=np.float64)
    return interactions, stamps


def test_without_times_it_ranks_like_ease() -> None:
    data = block_matrix()
    session = SessionEASE(l2=5.0).fit(data)
    ease = build("ease", l2=5.0).fit(data)
    rows = np.arange(20)
    got, _ = session.recommend(rows, 6, exclude=data[rows])
    expected, _ = ease.recommend(rows, 6, exclude=data[rows])
    np.testing.assert_array_equal(got, expected)


def test_single_session_customer_gets_what_follows_their_last_item() -> None:
    interactions, stamps = sequence_data()
    model = SessionEASE(l2=1.0, seq_weight=3.0, window=1, recent=1, session_hours=1.0, gate="step")
    model.fit(interactions, timestamps=stamps)
    assert model.gate_[30] == 1.0 and model.gate_[31] == 0.0
    items, _ = model.recommend(np.array([30, 31]), 2, exclude=interactions[[30, 31]])
    assert items[0, 0] == 5  # 5 always follows 4, the latest item of customer 30
    ease = build("ease", l2=1.0).fit(interactions)
    plain, _ = ease.recommend(np.array([31]), 2, exclude=interactions[[31]])
    np.testing.assert_array_equal(items[1], plain[0])  # weeks-long history: EASE alone
    assert plain[0, 0] != 5


def test_fold_in_with_times_matches_recommend() -> None:
    interactions, stamps = sequence_data()
    model = SessionEASE(l2=1.0, seq_weight=3.0, window=2, recent=2, gate="step").fit(
        interactions, timestamps=stamps
    )
    rows = np.array([28, 29, 30, 31])
    known, known_scores = model.recommend(rows, 3, exclude=interactions[rows])
    folded, folded_scores = model.recommend_history(interactions[rows], 3, timestamps=stamps[rows])
    np.testing.assert_array_equal(folded, known)
    np.testing.assert_allclose(folded_scores, known_scores, rtol=1e-5)


def test_exp_gate_decays_with_history_span() -> None:
    interactions, stamps = sequence_data()
    model = SessionEASE(l2=1.0, gate="exp", session_hours=24.0).fit(interactions, timestamps=stamps)
    assert model.gate_[30] > 0.99 and model.gate_[31] < 0.01


def test_bad_times_and_parameters_are_clear_errors() -> None:
    interactions, stamps = sequence_data()
    with pytest.raises(ValueError, match="timestamps has shape"):
        SessionEASE(l2=1.0).fit(interactions, timestamps=stamps[:5])
    bad = stamps.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        SessionEASE(l2=1.0).fit(interactions, timestamps=bad)
    with pytest.raises(ValueError, match="gate"):
        SessionEASE(gate="soft").fit(interactions)


def test_event_times_from_events() -> None:
    t0 = datetime(2020, 1, 1, tzinfo=UTC)
    events = pl.DataFrame(
        {
            "customer_id": ["a", "a", "b", "b", "z"],
            "item_id": ["x", "x", "y", "q", "x"],
            "timestamp": [t0, t0 + timedelta(seconds=5), t0, t0, t0],
        }
    )
    customers, items = IdMap.from_ids(["a", "b"]), IdMap.from_ids(["x", "y"])
    matrix = event_times(events, customers, items)
    assert matrix.shape == (2, 2) and matrix.nnz == 2  # unknown customer z and item q left out
    assert matrix[0, 0] == t0.timestamp() + 5  # latest event of the pair
    assert matrix[1, 1] == t0.timestamp()


def test_blend_passes_times_to_components_that_take_them() -> None:
    interactions, stamps = sequence_data()
    params = {"l2": 1.0, "seq_weight": 3.0, "window": 1, "recent": 1, "gate": "step"}
    blend = Blend(
        models=[
            {"name": "session_ease", "params": params},
            {"name": "popularity"},
        ],
        weights=[1.0, 0.0],
    ).fit(interactions, timestamps=stamps)
    session = blend.components_[0]
    assert isinstance(session, SessionEASE) and session.gate_[30] == 1.0
    items, _ = blend.recommend(np.array([30]), 1, exclude=interactions[[30]])
    assert items[0, 0] == 5


def test_normalised_transitions_damp_hubs() -> None:
    # item 2 follows both 0 and 1 often; item 3 follows only 1, once
    transitions = sp.csr_matrix(np.array([[0, 0, 4, 0], [0, 0, 4, 1], [0, 0, 0, 0], [0, 0, 0, 0]]))
    same = normalise_transitions(transitions.astype(np.float32), 0.0, 0.0)
    np.testing.assert_allclose(same.toarray(), transitions.toarray())
    damped = normalise_transitions(transitions.astype(np.float32), 0.5, 1.0).toarray()
    np.testing.assert_allclose(damped[1], [0, 0, 4 / np.sqrt(5) / 8, 1 / np.sqrt(5) / 1])
    assert damped[1, 3] > damped[1, 2]
