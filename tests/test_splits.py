"""Splits: per-customer temporal holdout and global cut-off, no leakage, nothing lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from features.splits import (
    AFTER_CUT,
    COLD_CUSTOMER,
    COLD_ITEM,
    SMALL_CUSTOMER,
    TEST,
    TRAIN,
    global_cutoff,
    n_test_positives,
    temporal_holdout,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SCHEMA = {
    "customer_id": pl.String(),
    "item_id": pl.String(),
    "event_type": pl.String(),
    "timestamp": pl.Datetime("us", "UTC"),
}


def frame(rows: list[tuple[str, str, str, int]]) -> pl.DataFrame:
    """(customer, item, type, day) rows."""
    return pl.DataFrame(
        [(c, i, t, T0 + timedelta(days=d)) for c, i, t, d in rows], schema=SCHEMA, orient="row"
    )


def latest(df: pl.DataFrame) -> datetime:
    value = df.get_column("timestamp").max()
    assert isinstance(value, datetime)
    return value


def pairs(df: pl.DataFrame) -> set[tuple[str, str]]:
    return set(df.select("customer_id", "item_id").iter_rows())


@pytest.mark.parametrize(("n", "expected"), [(1, 1), (5, 1), (6, 2), (10, 2), (11, 3), (15, 3)])
def test_ceil_twenty_percent_at_least_one(n: int, expected: int) -> None:
    assert n_test_positives(n, 0.2) == expected  # 15 * 0.2 is 3.0000000000000004 in floats


def shop() -> pl.DataFrame:
    rows = [("a", f"i{d}", "purchase", d) for d in range(1, 7)]  # a: 6 positives -> 2 test
    rows += [
        ("a", "x", "view", 0),  # before the cut: train
        ("a", "y", "view", 5),  # same time as first test positive: not strictly earlier
        ("a", "w", "view", 9),  # after the cut
        ("a", "i1", "purchase", 8),  # repeat purchase of a train pair after the cut
        ("a", "i6", "purchase", 9),  # repeat of a test pair
    ]
    rows += [("b", i, "purchase", d) for d, i in enumerate(["i1", "i2", "i5", "i6", "z"], 1)]
    rows += [("c", "i1", "purchase", 1), ("c", "q", "view", 0)]  # c: below min positives
    return frame(rows)


def test_temporal_holdout_rules() -> None:
    split = temporal_holdout(shop())
    # a: last ceil(0.2 * 6) = 2 positives (i5, i6) test; b: last 1 (z) test, but z is cold
    assert pairs(split.test) == {("a", "i5"), ("a", "i6")}
    assert pairs(split.dropped) == {("b", "z")}
    assert split.dropped.get_column("reason").to_list() == [COLD_ITEM]
    train_a = split.train.filter(pl.col("customer_id") == "a")
    assert sorted(train_a.get_column("item_id").to_list()) == ["i1", "i2", "i3", "i4", "x"]
    # non-positives strictly before the first test positive (day 5), nothing later
    assert latest(train_a) < T0 + timedelta(days=5)
    assert "c" not in split.train.get_column("customer_id").to_list()
    r = split.report
    assert r.rows == {TRAIN: 9, TEST: 2, COLD_ITEM: 1, AFTER_CUT: 4, SMALL_CUSTOMER: 2}
    assert sum(r.rows.values()) == r.rows_in == shop().height
    assert (r.customers_in, r.customers_kept, r.customers_evaluated) == (3, 2, 1)
    assert (r.cold_item_positives, r.cold_items, r.cold_customers) == (1, 1, 0)


def test_ties_broken_by_item_id() -> None:
    rows = [("a", i, "purchase", 1) for i in ["e", "d", "c", "b", "a"]]
    rows += [("a", "v", "view", 0), ("b", "v", "view", 0)]
    rows += [("b", i, "purchase", 0) for i in ["e", "p", "q", "r", "s", "t"]]  # b: s, t test
    split = temporal_holdout(frame(rows))
    assert pairs(split.test) == {("a", "e")}  # last by (time, item); b's s and t are cold
    assert pairs(split.dropped) == {("b", "s"), ("b", "t")}
    # the other same-time positives stay in train, since they are positives
    assert {"a", "b", "c", "d", "v"} <= set(split.train.get_column("item_id").to_list())


def test_no_leakage_from_test() -> None:
    split = temporal_holdout(shop())
    cut = split.test.group_by("customer_id").agg(pl.col("timestamp").min().alias("cut"))
    joined = split.train.join(cut, on="customer_id")
    # every train event of an evaluated customer is before their cut, except positives (ties)
    late = joined.filter(pl.col("timestamp") >= pl.col("cut"))
    assert late.filter(pl.col("event_type") != "purchase").height == 0
    assert not pairs(split.test) & pairs(split.train.filter(pl.col("event_type") == "purchase"))
    # test-only items (z) shape nothing: absent from train, reported as cold
    assert "z" not in split.train.get_column("item_id").to_list()


def test_validation_is_cut_the_same_way_from_train() -> None:
    rows = [("a", f"i{d:02d}", "purchase", d) for d in range(1, 11)]  # 10 positives
    rows += [("b", f"i{d:02d}", "purchase", d) for d in range(2, 9)]  # 7 positives
    rows += [("c", f"i{11 - d:02d}", "purchase", d) for d in range(1, 11)]  # reversed order
    rows += [("a", "i01", "view", 7)]
    split = temporal_holdout(frame(rows))
    # test: a -> i09, i10 (ceil 2); b -> i07, i08 (ceil 1.4 = 2); c -> i02, i01 (latest)
    assert pairs(split.test) == {
        ("a", "i09"),
        ("a", "i10"),
        ("b", "i07"),
        ("b", "i08"),
        ("c", "i02"),
        ("c", "i01"),
    }
    # validation: a has 8 train positives -> 2; b has 5 -> 1; c has 8 -> 2 (latest by time)
    assert pairs(split.validation) == {
        ("a", "i07"),
        ("a", "i08"),
        ("b", "i06"),
        ("c", "i04"),
        ("c", "i03"),
    }
    assert not pairs(split.validation) & pairs(split.validation_train)
    assert pairs(split.validation) <= pairs(split.train)
    # the view of i01 on day 7 is at a's validation cut: kept in train, not in validation_train
    a_val_train = split.validation_train.filter(pl.col("customer_id") == "a")
    assert "view" not in a_val_train.get_column("event_type").to_list()
    assert split.validation_report.rows_in == split.train.height


def test_small_customers_stay_whole_in_validation_train() -> None:
    rows = [("a", f"i{d}", "purchase", d) for d in range(1, 7)]  # 6 -> 4 train positives
    split = temporal_holdout(frame(rows))
    assert split.validation.height == 0  # 4 train positives < 5: not evaluated in validation
    assert split.validation_train.height == split.train.height == 4


def test_global_cutoff_counts_cold_customers_and_items() -> None:
    rows = [
        ("a", "i1", "purchase", 1),
        ("a", "i2", "view", 2),
        ("a", "i2", "purchase", 6),  # test
        ("a", "i1", "purchase", 7),  # repeat of a train pair: after_cut, not a test positive
        ("a", "n", "purchase", 7),  # new item: cold
        ("b", "i1", "purchase", 8),  # b has no train events: cold customer
        ("c", "i3", "purchase", 1),
        ("c", "i1", "purchase", 3),
    ]
    split = global_cutoff(frame(rows), T0 + timedelta(days=5))
    assert pairs(split.test) == {("a", "i2")}
    assert dict(split.dropped.select("item_id", "reason").iter_rows()) == {
        "n": COLD_ITEM,
        "i1": COLD_CUSTOMER,
    }
    r = split.report
    assert (r.cold_items, r.cold_customers) == (1, 1)
    assert r.rows == {TRAIN: 4, TEST: 1, AFTER_CUT: 1, COLD_ITEM: 1, COLD_CUSTOMER: 1}
    assert latest(split.train) < T0 + timedelta(days=5)
    # validation window as long as the test one (3 days): cut at day 2
    assert pairs(split.validation) == {("c", "i1")}
    assert latest(split.validation_train) < T0 + timedelta(days=2)
