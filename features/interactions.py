"""From validated events to one weighted interaction per (customer, item).

Steps, all vectorised in polars (no per-row Python):

1. **Weight** each event by its type (``InteractionConfig.weights``; types without a weight
   count 0 and are ignored). Purchases can be scaled by their quantity (``quantity_types``).
2. **Decay** (optional): ``weight * 0.5 ** (age_days / half_life_days)`` where the age is
   measured back from ``reference_time`` (default: the latest event). Events later than the
   reference time get age 0 (they are not dropped: cutting by time is the splits' job).
3. **Sum** per (customer, item). Negative weights (e.g. ``remove_from_cart``) lower the sum;
   a pair whose sum is <= 0 carries no positive evidence and is dropped, because an implicit
   confidence matrix cannot express "dislike".
4. **Minimum support**: customers with fewer than ``min_customer_support`` distinct items and
   items with fewer than ``min_item_support`` distinct customers are removed. By default the
   filter is *iterated* until both hold at once (a k-core); ``support_passes=1`` applies a
   single pass (customers first, then items), after which a customer may again fall short.
5. **Confidence**: ``alpha * w`` (``"linear"``) or ``log1p(alpha * w)`` (``"log1p"``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

import polars as pl

DEFAULT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "add_to_cart": 3.0,
    "remove_from_cart": -1.0,
    "purchase": 5.0,
    "email_open": 0.5,
    "email_click": 1.5,
    "rating_pos": 5.0,
    "rating_neg": 0.0,
}
"""Out-of-the-box weights. ``rating_neg`` counts 0 (ignored); ``remove_from_cart`` subtracts."""

Confidence = Literal["log1p", "linear"]

AGGREGATE_COLUMNS: tuple[str, ...] = ("customer_id", "item_id", "weight", "n_events", "last_ts")


@dataclass
class InteractionConfig:
    """How events become confidence values. Serialisable with :meth:`to_dict`."""

    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    half_life_days: float | None = None
    reference_time: datetime | None = None
    confidence: Confidence = "log1p"
    alpha: float = 1.0
    min_customer_support: int = 1
    min_item_support: int = 1
    support_passes: int | None = None
    """None: iterate the support filter until stable; n: at most n passes."""
    quantity_types: tuple[str, ...] = ()
    """Event types whose weight is multiplied by ``quantity`` (e.g. ``("purchase",)``)."""

    def __post_init__(self) -> None:
        if self.confidence not in ("log1p", "linear"):
            raise ValueError(f"confidence must be 'log1p' or 'linear', not {self.confidence!r}")
        if self.alpha <= 0:
            raise ValueError("alpha must be > 0")
        if self.half_life_days is not None and self.half_life_days <= 0:
            raise ValueError("half_life_days must be > 0 (or None for no decay)")
        if self.min_customer_support < 1 or self.min_item_support < 1:
            raise ValueError("minimum supports must be >= 1")
        if self.support_passes is not None and self.support_passes < 1:
            raise ValueError("support_passes must be >= 1 (or None to iterate until stable)")
        bad = {k: v for k, v in self.weights.items() if not math.isfinite(v)}
        if bad:
            raise ValueError(f"weights must be finite numbers: {bad}")
        self.quantity_types = tuple(self.quantity_types)

    def with_weights(self, **overrides: float) -> InteractionConfig:
        """A copy with some weights changed or added (new event types extend the table)."""
        data = self.to_dict()
        data["weights"] = {**self.weights, **overrides}
        return InteractionConfig.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["quantity_types"] = list(self.quantity_types)
        if self.reference_time is not None:
            data["reference_time"] = self.reference_time.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InteractionConfig:
        data = dict(data)
        ref = data.get("reference_time")
        if isinstance(ref, str):
            data["reference_time"] = datetime.fromisoformat(ref)
        data["quantity_types"] = tuple(data.get("quantity_types", ()))
        return cls(**data)


def event_weights(events: pl.DataFrame | pl.LazyFrame, config: InteractionConfig) -> pl.LazyFrame:
    """Events with a ``w`` column: type weight (x quantity where configured) x time decay.

    Events whose type weighs 0 (or is not in the table) are left out.
    """
    lazy = events.lazy()
    weight = pl.col("event_type").replace_strict(
        config.weights, default=0.0, return_dtype=pl.Float64
    )
    if config.quantity_types:
        scaled = pl.col("event_type").is_in(list(config.quantity_types))
        weight = weight * pl.when(scaled).then(pl.col("quantity").fill_null(1.0)).otherwise(1.0)
    lazy = lazy.with_columns(w=weight).filter(pl.col("w") != 0.0)
    if config.half_life_days is not None:
        ref = reference_time(events, config)
        age_days = (pl.lit(ref).cast(pl.Datetime("us", "UTC")) - pl.col("timestamp")).dt
        age = (age_days.total_microseconds().cast(pl.Float64) / 86_400e6).clip(lower_bound=0.0)
        decay = (age * (-math.log(2.0) / config.half_life_days)).exp()
        lazy = lazy.with_columns(w=pl.col("w") * decay)
    return lazy


def reference_time(events: pl.DataFrame | pl.LazyFrame, config: InteractionConfig) -> datetime:
    """The decay reference: ``config.reference_time`` or the latest event's timestamp."""
    if config.reference_time is not None:
        return config.reference_time
    latest = events.lazy().select(pl.col("timestamp").max()).collect().item()
    if latest is None:
        raise ValueError("cannot decay: no events and no reference_time")
    return latest


def aggregate(
    events: pl.DataFrame | pl.LazyFrame,
    config: InteractionConfig | None = None,
    *,
    details: bool = True,
) -> pl.DataFrame:
    """One row per (customer, item): ``weight`` (confidence), ``n_events``, ``last_ts``.

    Also ``raw_weight``: the decayed sum before confidence scaling. ``details=False`` leaves
    out ``n_events`` and ``last_ts`` (faster; what the matrix builder needs).
    """
    config = config or InteractionConfig()
    aggs = [pl.col("w").sum().alias("raw_weight")]
    if details:
        aggs += [
            pl.len().cast(pl.Int64).alias("n_events"),
            pl.col("timestamp").max().alias("last_ts"),
        ]
    pairs = (
        event_weights(events, config)
        .group_by("customer_id", "item_id")
        .agg(aggs)
        .filter(pl.col("raw_weight") > 0.0)
        .collect()
    )
    pairs = apply_min_support(pairs, config)
    scaled = pl.col("raw_weight") * config.alpha
    confidence = scaled.log1p() if config.confidence == "log1p" else scaled
    extra = ["n_events", "last_ts"] if details else []
    return pairs.select("customer_id", "item_id", confidence.alias("weight"), *extra, "raw_weight")


def apply_min_support(pairs: pl.DataFrame, config: InteractionConfig) -> pl.DataFrame:
    """Drop customers/items below their minimum support (distinct partners); see module doc."""
    min_c, min_i = config.min_customer_support, config.min_item_support
    if min_c <= 1 and min_i <= 1:
        return pairs
    passes = 0
    while config.support_passes is None or passes < config.support_passes:
        before = pairs.height
        if min_c > 1:
            pairs = pairs.filter(pl.len().over("customer_id") >= min_c)
        if min_i > 1:
            pairs = pairs.filter(pl.len().over("item_id") >= min_i)
        passes += 1
        if pairs.height == before:
            break
    return pairs
