"""The evaluation protocol on small event frames: cut rules, exclusion, cold items, scoring."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from features.interactions import InteractionConfig
from recsys.evaluation.metrics import customer_metrics, hit_matrix
from recsys.evaluation.protocol import Fold, ProtocolConfig, ProtocolData, evaluate
from recsys.models import build

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SCHEMA = {
    "customer_id": pl.String(),
    "item_id": pl.String(),
    "event_type": pl.String(),
    "timestamp": pl.Datetime("us", "UTC"),
}
CONFIG = ProtocolConfig.for_source("movielens", ks=(1, 3, 5))


def frame(rows: list[tuple[str, str, str, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        [(c, i, t, T0 + timedelta(hours=h)) for c, i, t, h in rows], schema=SCHEMA, orient="row"
    )


def ratings() -> pl.DataFrame:
    """Six customers over items a..h (and x); u1 also has a low rating on the most popular item."""
    rows: list[tuple[str, str, str, int]] = []
    histories = {
        "u1": "abcdef",  # 6 positives -> test: e, f
        "u2": "abcdeg",  # test: e, g
        "u3": "bcdefh",  # test: f, h
        "u4": "acdefg",  # test: f, g
        "u5": "abcdx",  # test: x (cold: nobody has x in train) -> u5 not evaluated
        "u6": "fhgeab",  # test: a, b; gives f, h, g, e a place in train
    }
    for customer, items in histories.items():
        rows += [(customer, item, "rating_pos", h) for h, item in enumerate(items)]
    rows += [("u1", "g", "rating_neg", 2), ("u1", "h", "rating_neg", 9)]  # h after the cut
    return frame(rows)


def test_fold_rules_exclusion_and_cold_items() -> None:
    data = ProtocolData.from_events(ratings(), CONFIG)
    fold = data.test
    # u5's only test positive (x) is cold: dropped, counted, and u5 is not evaluated
    assert data.split.report.cold_item_positives == 1
    assert "x" not in fold.items.ids
    evaluated = set(fold.customers.id_of(fold.rows))
    assert evaluated == {"u1", "u2", "u3", "u4", "u6"}
    u1 = int(fold.customers.index_of(["u1"])[0])
    row = int(np.flatnonzero(fold.rows == u1)[0])
    relevant = set(fold.items.id_of(fold.relevant[row].indices))
    assert relevant == {"e", "f"}
    # u1's train: positives a-d plus the low rating on g (before the cut); h came after
    seen_u1 = set(fold.items.id_of(fold.seen[u1].indices))
    assert seen_u1 == {"a", "b", "c", "d", "g"}
    # ranking excludes every train item, positive or not, and covers the rest of the catalog
    popularity = fold.fit(build("popularity"), InteractionConfig(weights={"rating_pos": 1.0}))
    result = evaluate(popularity, fold, CONFIG)
    recommended = result.extra["recommended"]
    rec_u1 = {fold.items.ids[j] for j in recommended[row] if j >= 0}
    assert rec_u1 == set(fold.items.ids) - seen_u1
    for r, customer in enumerate(fold.rows):
        assert not set(recommended[r][recommended[r] >= 0]) & set(fold.seen[customer].indices)


def test_non_positive_weight_is_tunable_and_zero_still_excludes() -> None:
    fold = ProtocolData.from_events(ratings(), CONFIG).test
    g = int(fold.items.index_of(["g"])[0])
    u1 = int(fold.customers.index_of(["u1"])[0])
    zero = fold.matrices(InteractionConfig(weights={"rating_pos": 1.0, "rating_neg": 0.0}))
    assert zero.interactions[u1, g] == 0  # no training signal from the low rating ...
    assert fold.seen[u1, g] == 1  # ... but g is still excluded from u1's ranking
    half = fold.matrices(InteractionConfig(weights={"rating_pos": 1.0, "rating_neg": 0.5}))
    assert half.interactions[u1, g] == pytest.approx(0.5, rel=0.01) or half.interactions[
        u1, g
    ] == pytest.approx(np.log1p(0.5), rel=0.01)


def test_scores_match_the_metric_definitions() -> None:
    fold = ProtocolData.from_events(ratings(), CONFIG).test
    model = fold.fit(build("popularity"), InteractionConfig(weights={"rating_pos": 1.0}))
    result = evaluate(model, fold, CONFIG)
    hits = hit_matrix(result.extra["recommended"], fold.relevant)
    expected = customer_metrics(hits, np.diff(fold.relevant.indptr), CONFIG.k)
    assert result.metrics["ndcg"] == pytest.approx(expected["ndcg"].mean())
    assert result.n_customers == 5
    assert 0.0 < result.metrics["recall"] <= 1.0


def test_validation_is_cut_from_train_only() -> None:
    data = ProtocolData.from_events(ratings(), CONFIG)
    test_pairs = set(data.split.test.select("customer_id", "item_id").iter_rows())
    val_train = set(data.split.validation_train.select("customer_id", "item_id").iter_rows())
    validation = set(data.split.validation.select("customer_id", "item_id").iter_rows())
    assert not test_pairs & (val_train | validation)
    assert isinstance(data.validation, Fold)
    assert len(data.validation.items) <= len(data.test.items)


def test_nothing_to_evaluate_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="nothing to evaluate"):
        ProtocolData.from_events(frame([("u", "a", "rating_pos", 0)]), CONFIG)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="unknown source"):
        ProtocolConfig.for_source("netflix")
    with pytest.raises(ValueError, match="test_fraction"):
        ProtocolConfig(test_fraction=1.5)
    assert ProtocolConfig(k=7, ks=(5,)).ks == (5, 7)


def test_a_shop_excludes_what_was_bought_and_keeps_what_was_viewed() -> None:
    """A shop's ranking filters bought items (as serving does); viewed ones stay rankable,
    so buying a viewed item is a hit. MovieLens excludes every rated item."""
    rows: list[tuple[str, str, str, int]] = []
    for n, customer in enumerate(["s1", "s2", "s3"]):
        rows += [(customer, item, "purchase", h) for h, item in enumerate("abcde")]
        rows += [(customer, "v", "view", 1), (customer, "w", "view", 10 + n)]
    rows += [("s4", "v", "purchase", 0), ("s4", "w", "purchase", 1)]  # v, w bought by someone
    rows += [("s1", "v", "purchase", 20)]  # s1 buys the item viewed before the cut
    config = ProtocolConfig.for_source("shop", ks=(1, 3, 5))
    assert config.exclude_types == ("purchase",) and CONFIG.exclude_types == ()
    fold = ProtocolData.from_events(frame(rows), config).test
    s1 = int(fold.customers.index_of(["s1"])[0])
    assert set(fold.items.id_of(fold.seen[s1].indices)) == {"a", "b", "c", "d"}
    popularity = fold.fit(build("popularity"), InteractionConfig(weights={"purchase": 1.0}))
    recommended = evaluate(popularity, fold, config).extra["recommended"]
    row = int(np.flatnonzero(fold.rows == s1)[0])
    ranked = {fold.items.ids[j] for j in recommended[row] if j >= 0}
    assert "v" in ranked and "a" not in ranked
    assert fold.unreachable == 0


def test_excluded_types_are_not_the_positive_types() -> None:
    """Evaluated on purchases and carts, a shop still excludes only what was bought: an item
    carted before the cut and bought after it is a hit to find, not excluded."""
    rows: list[tuple[str, str, str, int]] = []
    for customer in ["s1", "s2", "s3"]:
        rows += [(customer, item, "purchase", h) for h, item in enumerate("abc")]
    rows += [("s1", "v", "add_to_cart", 5), ("s1", "w", "purchase", 20), ("s2", "v", "view", 1)]
    rows += [("s2", "w", "purchase", 4), ("s1", "v", "purchase", 30)]
    config = ProtocolConfig.for_source(
        "shop", positive_types=("purchase", "add_to_cart"), min_positives=3, ks=(1, 3)
    )
    fold = ProtocolData.from_events(frame(rows), config).test
    s1 = int(fold.customers.index_of(["s1"])[0])
    assert "v" not in set(fold.items.id_of(fold.seen[s1].indices))
