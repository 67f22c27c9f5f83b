"""Train / validation / test splits of validated events, without leakage.

Two ways to cut, each with a validation split cut the same way from train:

- :func:`temporal_holdout`: per customer, the last fraction of their positives by time goes to
  test (the evaluation protocol of ``recsys.evaluation.protocol`` uses it);
- :func:`global_cutoff`: every event before a point in time trains, positives after it test.

Rules shared by both:

- a *positive* is the first event of a (customer, item) pair whose type is one of
  ``positive_types`` (a repeat purchase of the same item is not a new positive);
- train holds only what happened before the cut, so nothing in test shapes id maps, weights or
  popularity built from train;
- test positives whose item never occurs in train, or whose customer has no train event, are
  cold: they are moved to ``dropped`` with a reason and counted in the report, never silently
  lost. Every input row ends up in exactly one bucket of ``report.rows`` and the buckets add up
  to ``report.rows_in`` (checked by code).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

import polars as pl

# Row buckets (the ``split`` label of every input row).
TRAIN = "train"
TEST = "test"
COLD_ITEM = "test_cold_item"
COLD_CUSTOMER = "test_cold_customer"
SMALL_CUSTOMER = "customer_below_min_positives"
AFTER_CUT = "after_cut"
"""Non-positive events at or after the customer's cut, and repeats of already-known pairs."""

_ROW = "_split_row"
_LABEL = "_split_label"


@dataclass(frozen=True)
class SplitReport:
    """What a cut did to the rows, customers and items (all counts)."""

    method: str
    rows_in: int
    rows: dict[str, int]
    customers_in: int
    customers_kept: int
    customers_evaluated: int
    train_customers: int
    train_items: int
    test_positives: int
    cold_item_positives: int
    cold_customer_positives: int
    cold_items: int
    cold_customers: int
    cutoff: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        buckets = ", ".join(f"{k}={v}" for k, v in sorted(self.rows.items()))
        return (
            f"{self.method}: {self.rows_in} rows ({buckets}); customers kept "
            f"{self.customers_kept}/{self.customers_in}, evaluated {self.customers_evaluated}; "
            f"test positives {self.test_positives} (dropped cold: {self.cold_item_positives} "
            f"positives of {self.cold_items} items, {self.cold_customer_positives} of "
            f"{self.cold_customers} customers)"
        )


@dataclass(frozen=True)
class Cut:
    """One cut: the events to fit on, the held-out positives, and what was dropped."""

    train: pl.DataFrame
    test: pl.DataFrame
    dropped: pl.DataFrame
    """Cold test positives, with a ``reason`` column (``test_cold_item`` / ``..._customer``)."""
    report: SplitReport


@dataclass(frozen=True)
class Split:
    """Train / validation / test event frames.

    ``train`` is what the final model fits on; ``test`` the held-out positives, touched once.
    ``validation`` is cut from ``train`` the same way, and ``validation_train`` is what a
    model fits on while tuning against ``validation``.
    """

    train: pl.DataFrame
    validation: pl.DataFrame
    test: pl.DataFrame
    report: SplitReport
    validation_train: pl.DataFrame
    validation_report: SplitReport
    dropped: pl.DataFrame = field(default_factory=pl.DataFrame)

    @classmethod
    def from_cuts(cls, test: Cut, validation: Cut) -> Split:
        """The split of a test cut and a validation cut made from its train."""
        return cls(
            train=test.train,
            validation=validation.test,
            test=test.test,
            report=test.report,
            validation_train=validation.train,
            validation_report=validation.report,
            dropped=test.dropped,
        )

    @property
    def test_cut(self) -> Cut:
        return Cut(self.train, self.test, self.dropped, self.report)

    @property
    def validation_cut(self) -> Cut:
        return Cut(self.validation_train, self.validation, pl.DataFrame(), self.validation_report)


# --- helpers -------------------------------------------------------------------------------


def n_test_positives(n: int, fraction: float, min_test: int = 1) -> int:
    """ceil(fraction * n), at least ``min_test`` and at most n, in exact arithmetic."""
    frac = Fraction(fraction).limit_denominator(1_000_000)
    return min(n, max(min_test, math.ceil(n * frac)))


def _first_positives(ev: pl.DataFrame, positive_types: tuple[str, ...]) -> pl.DataFrame:
    """The first positive event of each (customer, item) pair: customer, item, timestamp, row."""
    return (
        ev.filter(pl.col("event_type").is_in(positive_types))
        .sort("timestamp", "item_id", _ROW)
        .group_by("customer_id", "item_id", maintain_order=True)
        .agg(pl.col("timestamp").first(), pl.col(_ROW).first())
    )


def _finish(
    ev: pl.DataFrame,
    method: str,
    *,
    customers_in: int,
    customers_kept: int,
    cutoff: str | None = None,
) -> Cut:
    """Relabel cold test rows, build the frames and the report from the ``_LABEL`` column."""
    train = ev.filter(pl.col(_LABEL) == TRAIN)
    train_items = train.get_column("item_id").unique()
    train_customers = train.get_column("customer_id").unique()
    is_test = pl.col(_LABEL) == TEST
    ev = ev.with_columns(
        pl.when(is_test & ~pl.col("customer_id").is_in(train_customers.implode()))
        .then(pl.lit(COLD_CUSTOMER))
        .when(is_test & ~pl.col("item_id").is_in(train_items.implode()))
        .then(pl.lit(COLD_ITEM))
        .otherwise(pl.col(_LABEL))
        .alias(_LABEL)
    )
    rows = dict(ev.group_by(_LABEL).len().iter_rows())
    rows_in = ev.height
    if sum(rows.values()) != rows_in:  # pragma: no cover - guards the bookkeeping
        raise AssertionError(f"split lost rows: {rows} vs {rows_in}")
    public = [c for c in ev.columns if c not in (_ROW, _LABEL)]
    test = ev.filter(is_test).sort("customer_id", "timestamp", "item_id").select(public)
    dropped = (
        ev.filter(pl.col(_LABEL).is_in([COLD_ITEM, COLD_CUSTOMER]))
        .sort(_ROW)
        .select([*public, pl.col(_LABEL).alias("reason")])
    )
    cold_item_rows = dropped.filter(pl.col("reason") == COLD_ITEM)
    cold_customer_rows = dropped.filter(pl.col("reason") == COLD_CUSTOMER)
    report = SplitReport(
        method=method,
        rows_in=rows_in,
        rows={k: int(v) for k, v in rows.items()},
        customers_in=customers_in,
        customers_kept=customers_kept,
        customers_evaluated=test.get_column("customer_id").n_unique(),
        train_customers=len(train_customers),
        train_items=len(train_items),
        test_positives=test.height,
        cold_item_positives=cold_item_rows.height,
        cold_customer_positives=cold_customer_rows.height,
        cold_items=cold_item_rows.get_column("item_id").n_unique(),
        cold_customers=cold_customer_rows.get_column("customer_id").n_unique(),
        cutoff=cutoff,
    )
    return Cut(train.sort(_ROW).select(public), test, dropped, report)


# --- per-customer temporal holdout ---------------------------------------------------------


def holdout_cut(
    events: pl.DataFrame,
    fraction: float = 0.2,
    *,
    positive_types: tuple[str, ...] = ("purchase",),
    min_positives: int = 5,
    min_test: int = 1,
    drop_small_customers: bool = True,
) -> Cut:
    """One per-customer temporal cut.

    For each customer with at least ``min_positives`` positives, sorted by (timestamp, item
    id), the last ceil(fraction * n) (at least ``min_test``) go to test. Train keeps the
    customer's other positives plus every other event strictly earlier than their first test
    positive; nothing later. Customers below ``min_positives`` are dropped when
    ``drop_small_customers`` (counted), else kept whole in train.
    """
    positive_types = tuple(positive_types)
    ev = events.with_row_index(_ROW)
    pairs = _first_positives(ev, positive_types).sort("customer_id", "timestamp", "item_id")
    frac = Fraction(fraction).limit_denominator(1_000_000)
    n = pl.len().over("customer_id")
    n_test = pl.max_horizontal(
        pl.lit(min_test), (n * frac.numerator + frac.denominator - 1) // frac.denominator
    )
    pairs = pairs.with_columns(
        n=n,
        is_test=(n >= min_positives)
        & (pl.int_range(pl.len()).over("customer_id") >= n - pl.min_horizontal(n, n_test)),
    )
    kept = pairs.filter(pl.col("n") >= min_positives)
    cuts = (
        kept.filter("is_test").group_by("customer_id").agg(pl.col("timestamp").min().alias("_cut"))
    )
    first_rows = pairs.select(_ROW, pl.col("is_test").alias("_first_is_test"))
    ev = ev.join(cuts, on="customer_id", how="left").join(first_rows, on=_ROW, how="left")
    customers_in = ev.get_column("customer_id").n_unique()
    is_small = ~pl.col("customer_id").is_in(kept.get_column("customer_id").unique().implode())
    first = pl.col("_first_is_test")
    before = pl.col("_cut").is_null() | (pl.col("timestamp") < pl.col("_cut"))
    # a test pair's first positive is at or after the cut, so its repeats are too
    label = (
        pl.when(is_small & pl.lit(drop_small_customers))
        .then(pl.lit(SMALL_CUSTOMER))
        .when(first.fill_null(False))
        .then(pl.lit(TEST))
        .when(first.is_not_null() | before)
        .then(pl.lit(TRAIN))  # a train pair's first positive (may tie with the cut) or earlier
        .otherwise(pl.lit(AFTER_CUT))
    )
    ev = ev.with_columns(label.alias(_LABEL)).drop("_cut", "_first_is_test")
    customers_kept = (
        kept.get_column("customer_id").n_unique() if drop_small_customers else customers_in
    )
    return _finish(ev, "temporal_holdout", customers_in=customers_in, customers_kept=customers_kept)


def temporal_holdout(
    events: pl.DataFrame,
    fraction: float = 0.2,
    *,
    positive_types: tuple[str, ...] = ("purchase",),
    min_positives: int = 5,
    min_test: int = 1,
    validation_fraction: float | None = None,
) -> Split:
    """Per-customer temporal holdout, with validation cut the same way from train.

    Validation uses the same rules on ``train`` (``validation_fraction`` defaults to
    ``fraction``); customers with too few train positives stay whole in ``validation_train``.
    """
    test = holdout_cut(
        events,
        fraction,
        positive_types=positive_types,
        min_positives=min_positives,
        min_test=min_test,
    )
    val = holdout_cut(
        test.train,
        fraction if validation_fraction is None else validation_fraction,
        positive_types=positive_types,
        min_positives=min_positives,
        min_test=min_test,
        drop_small_customers=False,
    )
    return Split.from_cuts(test, val)


# --- global time cut-off -------------------------------------------------------------------


def cutoff_cut(
    events: pl.DataFrame,
    cutoff: datetime,
    *,
    positive_types: tuple[str, ...] = ("purchase",),
    min_positives: int = 1,
) -> Cut:
    """Everything strictly before ``cutoff`` trains; new positive pairs at or after it test.

    Customers with fewer than ``min_positives`` positives overall are dropped (counted). A
    positive pair already positive before the cut is not a test positive (``after_cut``).
    """
    positive_types = tuple(positive_types)
    cut = pl.lit(cutoff).cast(pl.Datetime("us", "UTC"))
    ev = events.with_row_index(_ROW)
    pairs = _first_positives(ev, positive_types)
    counts = pairs.group_by("customer_id").len("n")
    kept = counts.filter(pl.col("n") >= min_positives).get_column("customer_id")
    test_rows = pairs.filter(pl.col("timestamp") >= cut).get_column(_ROW)
    customers_in = ev.get_column("customer_id").n_unique()
    label = (
        pl.when(~pl.col("customer_id").is_in(kept.implode()))
        .then(pl.lit(SMALL_CUSTOMER))
        .when(pl.col("timestamp") < cut)
        .then(pl.lit(TRAIN))
        .when(pl.col(_ROW).is_in(test_rows.implode()))
        .then(pl.lit(TEST))
        .otherwise(pl.lit(AFTER_CUT))
    )
    ev = ev.with_columns(label.alias(_LABEL))
    return _finish(
        ev,
        "global_cutoff",
        customers_in=customers_in,
        customers_kept=len(kept),
        cutoff=cutoff.isoformat(),
    )


def global_cutoff(
    events: pl.DataFrame,
    cutoff: datetime,
    *,
    positive_types: tuple[str, ...] = ("purchase",),
    min_positives: int = 1,
    validation_cutoff: datetime | None = None,
) -> Split:
    """Global time cut-off, with validation cut the same way from train.

    ``validation_cutoff`` defaults to a window before ``cutoff`` as long as the test window
    (from ``cutoff`` to the last event).
    """
    test = cutoff_cut(events, cutoff, positive_types=positive_types, min_positives=min_positives)
    if validation_cutoff is None:
        last = events.get_column("timestamp").max()
        window = (last - cutoff) if isinstance(last, datetime) else timedelta(0)
        validation_cutoff = cutoff - max(window, timedelta(seconds=1))
    val = cutoff_cut(test.train, validation_cutoff, positive_types=positive_types, min_positives=1)
    return Split.from_cuts(test, val)
