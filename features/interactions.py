"""From validated events to one weighted interaction per (customer, item).

Steps, all vectorised (no per-row Python): weights in polars, sums on integer codes of the
sorted distinct ids in a scipy sparse matrix (:func:`pair_weights`, which
``features.matrices.build_matrices`` and :func:`aggregate` share):

1. **Weight** each event by its type (``InteractionConfig.weights``; types without a weight
   count 0 and are ignored). Purchases can be scaled by their quantity (``quantity_types``).
2. **Decay** (optional): ``weight * 0.5 ** (age_days / half_life_days)`` where the age is
   measured back from ``reference_time`` (default: the latest event). Events later than the
   reference time get age 0 (they are not dropped: cutting by time is the splits' job).
3. **Sum** per (customer, item), in float64. Negative weights (e.g. ``remove_from_cart``)
   lower the sum; a pair whose sum is <= 0 carries no positive evidence and is dropped,
   because an implicit confidence matrix cannot express "dislike".
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

import numpy as np
import polars as pl
import scipy.sparse as sp

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


def _type_weight(weights: dict[str, float]) -> pl.Expr:
    """Each event's type weight, 0.0 for types not in the table. A short table compares
    faster as a when/then chain than as a hash lookup (the usual case: a handful of types)."""
    nonzero = [(name, w) for name, w in weights.items() if w != 0.0]
    if not nonzero or len(nonzero) > 16:
        return pl.col("event_type").replace_strict(weights, default=0.0, return_dtype=pl.Float64)
    event = pl.col("event_type")
    (name, w), *rest = nonzero
    chain: Any = pl.when(event == name).then(pl.lit(w, pl.Float64))
    for name, w in rest:
        chain = chain.when(event == name).then(pl.lit(w, pl.Float64))
    return chain.otherwise(pl.lit(0.0, pl.Float64))


def _weight_expr(events: pl.DataFrame | pl.LazyFrame, config: InteractionConfig) -> pl.Expr:
    """Each event's weight: type weight (x quantity where configured) x time decay."""
    weight = _type_weight(config.weights)
    if config.quantity_types:
        scaled = pl.col("event_type").is_in(list(config.quantity_types))
        weight = weight * pl.when(scaled).then(pl.col("quantity").fill_null(1.0)).otherwise(1.0)
    if config.half_life_days is not None:
        ref = reference_time(events, config)
        age_days = (pl.lit(ref).cast(pl.Datetime("us", "UTC")) - pl.col("timestamp")).dt
        age = (age_days.total_microseconds().cast(pl.Float64) / 86_400e6).clip(lower_bound=0.0)
        weight = weight * (age * (-math.log(2.0) / config.half_life_days)).exp()
    return weight


def reference_time(events: pl.DataFrame | pl.LazyFrame, config: InteractionConfig) -> datetime:
    """The decay reference: ``config.reference_time`` or the latest event's timestamp."""
    if config.reference_time is not None:
        return config.reference_time
    latest = events.lazy().select(pl.col("timestamp").max()).collect().item()
    if latest is None:
        raise ValueError("cannot decay: no events and no reference_time")
    return latest


@dataclass
class PairWeights:
    """Summed event weights per (customer, item), on integer codes.

    ``matrix[r, c]`` is the (decayed) weight sum of customer ``customers[r]`` and item
    ``items[c]``; only pairs with a sum > 0 that pass the minimum support are stored (as a
    canonical float64 CSR: sorted indices, no duplicates, no zeros). ``customers`` / ``items``
    are the sorted distinct ids of all the events, so a row or column may be empty.
    """

    matrix: sp.csr_matrix
    customers: pl.Series
    items: pl.Series

    def present(self) -> tuple[np.ndarray, np.ndarray]:
        """(customer rows, item columns) that hold at least one pair, as boolean masks."""
        rows = np.diff(self.matrix.indptr) > 0
        cols = np.bincount(self.matrix.indices, minlength=self.matrix.shape[1]) > 0
        return rows, cols

    def coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """(row code, column code) of every stored pair, in CSR order."""
        indptr = self.matrix.indptr
        rows = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
        return rows, self.matrix.indices.astype(np.int64)


def _codes(ids: pl.Series) -> tuple[np.ndarray, pl.Series]:
    """(code per value, sorted distinct values): ``distinct[code[k]] == ids[k]``."""
    if ids.null_count():
        raise ValueError(
            f"events have null {ids.name} values; validate them first (features.validate)"
        )
    integer = _integer_codes(ids)
    if integer is not None:
        return integer
    distinct = ids.unique().sort()
    codes = ids.cast(pl.Enum(distinct)).to_physical().to_numpy()
    return codes, distinct


MAX_SPAN_PER_ID = 4
""":func:`_integer_codes` builds a table over the id range when it is at most this many
entries per id (plus 65,536); sparser ranges take the general path."""


def _integer_codes(ids: pl.Series) -> tuple[np.ndarray, pl.Series] | None:
    """:func:`_codes` for ids that are all plain integers (``"17"``, not ``"017"``), as most
    exports write them; None for any other column.

    Instead of hashing 5M strings, a presence table over the integer range gives each id its
    rank among the distinct numbers; the few distinct ids are then put in string order
    (``"10" < "9"``), so the result is the same as the general path's.
    """
    numbers = ids.cast(pl.Int64, strict=False)
    if ids.is_empty() or numbers.null_count():
        return None
    low, high = numbers.min(), numbers.max()
    assert isinstance(low, int) and isinstance(high, int)
    span = high - low + 1
    if span > MAX_SPAN_PER_ID * len(ids) + (1 << 16):
        return None
    offsets = numbers.to_numpy(writable=True)
    offsets -= low
    seen = np.zeros(span, dtype=bool)
    seen[offsets] = True
    distinct = pl.Series(ids.name, np.flatnonzero(seen) + low).cast(pl.String)
    # Equal numbers must mean equal ids: "7", "07" and "+7" all read as 7. The cast reads
    # only [+-]?[0-9]+, and a sign or a leading zero makes an id longer than the number's
    # own spelling, so an id as long as that spelling is that spelling.
    written = np.zeros(span, dtype=np.uint32)
    written[seen] = distinct.str.len_bytes().to_numpy()
    if not np.array_equal(ids.str.len_bytes().to_numpy(), written[offsets]):
        return None
    order = distinct.arg_sort().to_numpy()  # numeric rank -> string rank
    # offset -> string rank of that id; int32, the index type scipy uses, so not copied there
    table = np.zeros(span, dtype=np.int32)
    table[np.flatnonzero(seen)[order]] = np.arange(len(order), dtype=np.int32)
    return table[offsets], distinct.gather(order)


@dataclass
class _CodedEvents:
    """Events as integer codes: ``customers[rows[k]]``, ``items[cols[k]]``, weight ``w[k]``."""

    rows: np.ndarray
    cols: np.ndarray
    w: np.ndarray
    customers: pl.Series
    items: pl.Series
    timestamps: pl.Series | None = None


def _coded_events(
    events: pl.DataFrame | pl.LazyFrame, config: InteractionConfig, *, timestamps: bool = False
) -> _CodedEvents:
    """Each event's weight and the codes of its ids among the sorted distinct ids.

    Zero weights are kept (they add nothing to a sum; ids seen only with them end up in
    empty rows/columns).
    """
    columns = [
        pl.col("customer_id").cast(pl.String),
        pl.col("item_id").cast(pl.String),
        _weight_expr(events, config).alias("w"),
    ]
    if timestamps:
        columns.append(pl.col("timestamp"))
    frame = events.lazy().select(columns).collect()
    rows, customers = _codes(frame["customer_id"])
    cols, items = _codes(frame["item_id"])
    return _CodedEvents(
        rows=rows,
        cols=cols,
        w=frame["w"].to_numpy(),
        customers=customers,
        items=items,
        timestamps=frame["timestamp"] if timestamps else None,
    )


def _sum_pairs(coded: _CodedEvents, config: InteractionConfig) -> PairWeights:
    """Sum the weights per pair (scipy adds repeated (row, column) entries), drop sums <= 0,
    then apply the minimum support."""
    matrix = sp.csr_matrix(
        (coded.w, (coded.rows, coded.cols)),
        shape=(len(coded.customers), len(coded.items)),
        dtype=np.float64,
    )
    matrix.sum_duplicates()  # canonical: sorted indices, one entry per pair
    matrix.data[~(matrix.data > 0.0)] = 0.0  # sums <= 0 (and NaN) carry no evidence
    matrix.eliminate_zeros()
    return PairWeights(apply_min_support(matrix, config), coded.customers, coded.items)


def pair_weights(events: pl.DataFrame | pl.LazyFrame, config: InteractionConfig) -> PairWeights:
    """Steps 1-4 of the module doc: weighted, decayed, summed pairs after minimum support."""
    return _sum_pairs(_coded_events(events, config), config)


def confidence(raw_weight: np.ndarray, config: InteractionConfig) -> np.ndarray:
    """Step 5: ``alpha * w`` (linear) or ``log1p(alpha * w)``, float64."""
    scaled = np.asarray(raw_weight, dtype=np.float64) * config.alpha
    return np.log1p(scaled) if config.confidence == "log1p" else scaled


def aggregate(
    events: pl.DataFrame | pl.LazyFrame,
    config: InteractionConfig | None = None,
    *,
    details: bool = True,
) -> pl.DataFrame:
    """One row per (customer, item): ``weight`` (confidence), ``n_events``, ``last_ts``.

    Also ``raw_weight``: the decayed sum before confidence scaling. ``details=False`` leaves
    out ``n_events`` (events with a non-zero weight) and ``last_ts`` (the latest of them).
    Rows are sorted by customer, then item.
    """
    config = config or InteractionConfig()
    coded = _coded_events(events, config, timestamps=details)
    pairs = _sum_pairs(coded, config)
    rows, cols = pairs.coordinates()
    raw = pairs.matrix.data
    out = pl.DataFrame(
        {
            "r": rows,
            "c": cols,
            "customer_id": pairs.customers.gather(rows),
            "item_id": pairs.items.gather(cols),
            "weight": confidence(raw, config),
            "raw_weight": raw,
        }
    )
    extra: list[str] = []
    if details and coded.timestamps is not None:
        stats = (
            pl.DataFrame(
                {"r": coded.rows, "c": coded.cols, "w": coded.w, "timestamp": coded.timestamps}
            )
            .filter(pl.col("w") != 0.0)
            .group_by("r", "c")
            .agg(n_events=pl.len().cast(pl.Int64), last_ts=pl.col("timestamp").max())
            .with_columns(pl.col("r", "c").cast(pl.Int64))
        )
        out = out.join(stats, on=["r", "c"], how="left", maintain_order="left")
        extra = ["n_events", "last_ts"]
    return out.select("customer_id", "item_id", "weight", *extra, "raw_weight")


def apply_min_support(matrix: sp.csr_matrix, config: InteractionConfig) -> sp.csr_matrix:
    """Drop customers (rows) / items (columns) below their minimum support (distinct
    partners) from a canonical CSR of positive sums; see module doc. Modifies ``matrix``."""
    min_c, min_i = config.min_customer_support, config.min_item_support
    if min_c <= 1 and min_i <= 1:
        return matrix
    passes = 0
    while config.support_passes is None or passes < config.support_passes:
        before = matrix.nnz
        if min_c > 1:
            short = np.diff(matrix.indptr) < min_c
            matrix.data[np.repeat(short, np.diff(matrix.indptr))] = 0.0
            matrix.eliminate_zeros()
        if min_i > 1:
            counts = np.bincount(matrix.indices, minlength=matrix.shape[1])
            matrix.data[counts[matrix.indices] < min_i] = 0.0
            matrix.eliminate_zeros()
        passes += 1
        if matrix.nnz == before:
            break
    return matrix
