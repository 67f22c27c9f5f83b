"""Weights, time decay, confidence scaling and minimum support against hand-computed values."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from features.interactions import DEFAULT_WEIGHTS, InteractionConfig, aggregate
from features.schema import EVENT_SCHEMA

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def events(rows: Sequence[tuple[str, str, str, float, float | None]]) -> pl.DataFrame:
    """rows: (customer, item, type, days after T0, quantity)."""
    return pl.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "event_type": [r[2] for r in rows],
            "timestamp": [T0 + timedelta(days=r[3]) for r in rows],
            "quantity": [r[4] for r in rows],
            "price": [None] * len(rows),
            "channel": ["web"] * len(rows),
            "session_id": [None] * len(rows),
            "value": [None] * len(rows),
        },
        schema=EVENT_SCHEMA,
    )


def as_dict(frame: pl.DataFrame, column: str = "weight") -> dict[tuple[str, str], float]:
    return {(c, i): w for c, i, w in frame.select("customer_id", "item_id", column).iter_rows()}


def test_type_weights_sum_per_pair_linear() -> None:
    ev = events(
        [
            ("a", "x", "view", 0, None),
            ("a", "x", "add_to_cart", 0, 1),
            ("a", "x", "purchase", 0, 2),
            ("a", "y", "view", 0, None),
            ("a", "y", "email_click", 0, None),
            ("b", "x", "email_open", 0, None),
        ]
    )
    out = aggregate(ev, InteractionConfig(confidence="linear", alpha=2.0))
    assert as_dict(out, "raw_weight") == {("a", "x"): 9.0, ("a", "y"): 2.5, ("b", "x"): 0.5}
    assert as_dict(out) == {("a", "x"): 18.0, ("a", "y"): 5.0, ("b", "x"): 1.0}
    counts = {(c, i): n for c, i, n in out.select("customer_id", "item_id", "n_events").rows()}
    assert counts == {("a", "x"): 3, ("a", "y"): 2, ("b", "x"): 1}


def test_log1p_confidence_and_quantity_scaling() -> None:
    ev = events([("a", "x", "purchase", 0, 3), ("a", "y", "view", 0, None)])
    cfg = InteractionConfig(confidence="log1p", alpha=4.0, quantity_types=("purchase",))
    got = as_dict(aggregate(ev, cfg))
    assert got[("a", "x")] == pytest.approx(math.log1p(4.0 * 5.0 * 3))
    assert got[("a", "y")] == pytest.approx(math.log1p(4.0 * 1.0))


def test_negative_and_zero_weights_are_handled() -> None:
    ev = events(
        [
            ("a", "x", "add_to_cart", 0, 1),
            ("a", "x", "remove_from_cart", 0, 1),  # 3 - 1 = 2: kept, lowered
            ("a", "y", "view", 0, None),
            ("a", "y", "remove_from_cart", 0, 1),  # 1 - 1 = 0: no positive evidence
            ("a", "z", "rating_neg", 0, None),  # weight 0: ignored
            ("a", "w", "wishlist", 0, None),  # not in the table: ignored
        ]
    )
    out = aggregate(ev, InteractionConfig(confidence="linear"))
    assert as_dict(out) == {("a", "x"): 2.0}
    extended = InteractionConfig(confidence="linear").with_weights(wishlist=2.5)
    assert as_dict(aggregate(ev, extended))[("a", "w")] == 2.5
    assert extended.weights["view"] == DEFAULT_WEIGHTS["view"]


def test_half_life_decay_from_latest_event_and_explicit_reference() -> None:
    ev = events(
        [
            ("a", "x", "view", 0, None),  # 20 days before the latest event
            ("a", "y", "view", 10, None),  # 10 days before
            ("b", "y", "view", 20, None),  # the latest event: weight 1
        ]
    )
    cfg = InteractionConfig(confidence="linear", half_life_days=10)
    got = as_dict(aggregate(ev, cfg))
    assert got[("a", "x")] == pytest.approx(0.25)
    assert got[("a", "y")] == pytest.approx(0.5)
    assert got[("b", "y")] == pytest.approx(1.0)
    ref = InteractionConfig(
        confidence="linear", half_life_days=5, reference_time=T0 + timedelta(days=10)
    )
    got = as_dict(aggregate(ev, ref))
    assert got[("a", "x")] == pytest.approx(0.25)
    assert got[("a", "y")] == pytest.approx(1.0)
    assert got[("b", "y")] == pytest.approx(1.0)  # after the reference: age clipped to 0


def test_min_support_iterated_versus_single_pass() -> None:
    # c sees p and q; d and e see q and r; item p is seen by c only.
    rows = [
        ("c", "p", "view", 0, None),
        ("c", "q", "view", 0, None),
        ("d", "q", "view", 0, None),
        ("d", "r", "view", 0, None),
        ("e", "q", "view", 0, None),
        ("e", "r", "view", 0, None),
    ]
    ev = events(rows)
    iterated = aggregate(ev, InteractionConfig(min_customer_support=2, min_item_support=2))
    # p has 1 customer -> dropped; then c has 1 item -> dropped; q keeps d, e (2) -> stable.
    assert set(as_dict(iterated)) == {("d", "q"), ("d", "r"), ("e", "q"), ("e", "r")}
    single = aggregate(
        ev, InteractionConfig(min_customer_support=2, min_item_support=2, support_passes=1)
    )
    # one pass: every customer has 2 items; then p is dropped, leaving c with only q.
    assert set(as_dict(single)) == {("c", "q"), ("d", "q"), ("d", "r"), ("e", "q"), ("e", "r")}


def test_config_round_trip_and_validation() -> None:
    cfg = InteractionConfig(half_life_days=7, reference_time=T0, quantity_types=("purchase",))
    assert InteractionConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="confidence"):
        InteractionConfig(confidence="sqrt")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="half_life"):
        InteractionConfig(half_life_days=0)
    with pytest.raises(ValueError, match="finite"):
        InteractionConfig(weights={"view": float("nan")})


def test_aggregate_without_details_gives_the_same_weights() -> None:
    ev = events(
        [("a", "x", "view", 0, None), ("a", "x", "purchase", 1, 1), ("b", "y", "view", 2, None)]
    )
    full = aggregate(ev, InteractionConfig(half_life_days=3))
    lite = aggregate(ev, InteractionConfig(half_life_days=3), details=False)
    assert lite.columns == ["customer_id", "item_id", "weight", "raw_weight"]
    assert as_dict(lite) == pytest.approx(as_dict(full))
