"""The evaluation protocol: one fixed way to cut, rank and score, used everywhere.

See ``docs/evaluation.md`` for the rules in prose. In code:

1. :func:`split_events` cuts validated events with ``features.splits.temporal_holdout``
   (positives per source; customers with >= ``min_positives`` positives; the last
   ceil(20%) of each customer's positives by (timestamp, item id) to test; train keeps the
   other positives and the non-positive events strictly earlier than the first test
   positive; validation is the same cut applied to train; cold test items dropped, counted).
2. :class:`Fold` turns one cut (fit events + held-out positives) into matrices: id maps and
   popularity come from the fit events only; held-out positives become a relevance matrix
   over the evaluated customers; ``seen`` holds every item each customer has in the fit
   events (positive or not), excluded from their ranking.
3. :func:`evaluate` ranks the full catalog for every evaluated customer in batches through
   the model contract and scores the lists with ``recsys.evaluation.metrics``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from features.idmap import IdMap
from features.interactions import InteractionConfig
from features.matrices import Matrices, build_matrices
from features.splits import Split, SplitReport, temporal_holdout
from recsys.evaluation.metrics import (
    DEFAULT_K,
    DEFAULT_KS,
    DEFAULT_SEGMENT_EDGES,
    EvaluationResult,
    evaluate_rankings,
)
from recsys.models.base import RecommenderBase

POSITIVE_TYPES: dict[str, tuple[str, ...]] = {
    "movielens": ("rating_pos",),
    "shop": ("purchase",),
}
"""Default positive event types per kind of source."""

EXCLUDE_TYPES: dict[str, tuple[str, ...]] = {"movielens": (), "shop": ("purchase",)}
"""Default excluded event types per kind of source (``()``: every train item). A rated film
is never shown again; a shop filters what was bought, as serving does, so an item only viewed
or carted stays rankable (buying what one viewed is the conversion a shop wants)."""


class NothingToEvaluate(ValueError):
    """The data has no customer the protocol can evaluate (too few positives)."""


@dataclass(frozen=True)
class ProtocolConfig:
    """The protocol's knobs. The defaults are the protocol; change them only with reason."""

    positive_types: tuple[str, ...] = POSITIVE_TYPES["shop"]
    min_positives: int = 5
    test_fraction: float = 0.2
    k: int = DEFAULT_K
    ks: tuple[int, ...] = DEFAULT_KS
    segment_edges: tuple[int, ...] = DEFAULT_SEGMENT_EDGES
    batch_size: int = 4096
    exclude_types: tuple[str, ...] = ()
    """Train items excluded from a customer's ranking: those with an event of these types,
    or every train item when empty (:data:`EXCLUDE_TYPES` per source)."""

    def __post_init__(self) -> None:
        if not self.positive_types:
            raise ValueError("protocol needs at least one positive event type")
        if not 0 < self.test_fraction < 1:
            raise ValueError("test_fraction must be in (0, 1)")
        if self.min_positives < 2:
            raise ValueError("min_positives must be >= 2 (one to train on, one to test)")
        object.__setattr__(self, "exclude_types", tuple(self.exclude_types))
        object.__setattr__(self, "positive_types", tuple(self.positive_types))
        object.__setattr__(self, "ks", tuple(sorted(set(self.ks) | {self.k})))
        object.__setattr__(self, "segment_edges", tuple(self.segment_edges))

    @classmethod
    def for_source(cls, source: str, **overrides: Any) -> ProtocolConfig:
        """The protocol for ``"movielens"`` (rating_pos) or ``"shop"`` (purchase)."""
        if source not in POSITIVE_TYPES:
            raise ValueError(f"unknown source kind {source!r}; known: {sorted(POSITIVE_TYPES)}")
        overrides.setdefault("positive_types", POSITIVE_TYPES[source])
        overrides.setdefault("exclude_types", EXCLUDE_TYPES[source])
        return cls(**overrides)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def n(self) -> int:
        """List length to rank: the largest K of the curves."""
        return max(self.ks)


def split_events(events: pl.DataFrame, config: ProtocolConfig) -> Split:
    """The protocol's train / validation / test cut of validated events."""
    return temporal_holdout(
        events,
        config.test_fraction,
        positive_types=config.positive_types,
        min_positives=config.min_positives,
    )


def _ones_config(events: pl.DataFrame) -> InteractionConfig:
    types = events.get_column("event_type").unique().to_list()
    return InteractionConfig(weights={t: 1.0 for t in types}, confidence="linear")


@dataclass
class Fold:
    """One cut in matrix form: what a model fits on and what it is scored against."""

    train_events: pl.DataFrame
    customers: IdMap
    items: IdMap
    seen: sp.csr_matrix
    """customers x items, 1 where the customer has the item in train (positive or not)."""
    rows: np.ndarray
    """Customer indices evaluated (those with at least one warm held-out positive)."""
    relevant: sp.csr_matrix
    """len(rows) x items: the held-out positives of each evaluated customer."""
    item_popularity: np.ndarray
    """Share of training customers having each item (any interaction)."""
    report: SplitReport | None = None
    catalog: pl.DataFrame | None = None
    customer_attrs: pl.DataFrame | None = None
    _matrices: dict[str, Matrices] = field(default_factory=dict, repr=False)
    _timestamps: sp.csr_matrix | None = field(default=None, repr=False)

    @classmethod
    def from_events(
        cls,
        train_events: pl.DataFrame,
        heldout: pl.DataFrame,
        report: SplitReport | None = None,
        *,
        catalog: pl.DataFrame | None = None,
        customer_attrs: pl.DataFrame | None = None,
        exclude_types: Sequence[str] | None = None,
    ) -> Fold:
        """Build the fold; id maps and popularity come from ``train_events`` alone.

        ``seen`` (excluded from rankings) holds each customer's train items of
        ``exclude_types`` (None: of every type)."""
        customers = IdMap.from_ids(train_events.get_column("customer_id").unique().sort())
        items = IdMap.from_ids(train_events.get_column("item_id").unique().sort())
        touched = build_matrices(
            train_events, _ones_config(train_events), customers=customers, items=items
        ).interactions
        touched.data[:] = 1.0
        if exclude_types is None:
            seen = touched
        else:
            positives = train_events.filter(pl.col("event_type").is_in(list(exclude_types)))
            seen = build_matrices(
                positives,
                _ones_config(train_events),
                customers=customers,
                items=items,
                extend=False,
            ).interactions
            seen.data[:] = 1.0
        held = build_matrices(
            heldout, _ones_config(heldout), customers=customers, items=items, extend=False
        ).interactions
        n_held = np.diff(held.indptr)
        rows = np.flatnonzero(n_held > 0).astype(np.int32)
        relevant = held[rows]
        relevant.data[:] = 1.0
        counts = np.diff(touched.tocsc().indptr)
        popularity = counts / max(1, len(customers))
        return cls(
            train_events=train_events,
            customers=customers,
            items=items,
            seen=seen,
            rows=rows,
            relevant=sp.csr_matrix(relevant),
            item_popularity=popularity,
            report=report,
            catalog=catalog,
            customer_attrs=customer_attrs,
        )

    @property
    def unreachable(self) -> int:
        """Held-out positives the customer already has in train (excluded, so never hit)."""
        return int(self.relevant.multiply(self.seen[self.rows]).nnz)

    @property
    def history_length(self) -> np.ndarray:
        """Number of train items of each evaluated customer."""
        return np.diff(self.seen.indptr)[self.rows]

    def matrices(self, config: InteractionConfig) -> Matrices:
        """The training matrices under a feature config (cached per config), on this fold's maps."""
        key = repr(sorted(config.to_dict().items()))
        if key not in self._matrices:
            m = build_matrices(
                self.train_events,
                config,
                customers=self.customers,
                items=self.items,
                extend=False,
                catalog=self.catalog,
                customer_attrs=self.customer_attrs,
            )
            m.interactions.eliminate_zeros()
            self._matrices = {key: m}  # keep one: tuning changes the config every trial
        return self._matrices[key]

    def timestamps(self) -> sp.csr_matrix:
        """Event times of the training events on this fold's maps (for ``fit_timestamps``)."""
        if self._timestamps is None:
            from recsys.models.sequences import event_times

            self._timestamps = event_times(self.train_events, self.customers, self.items)
        return self._timestamps

    def fit(self, model: RecommenderBase, config: InteractionConfig) -> RecommenderBase:
        """Fit ``model`` on this fold's training matrices (and event times when it takes them)."""
        return fit_matrices(model, self.matrices(config), self.timestamps)


def fit_matrices(
    model: RecommenderBase,
    m: Matrices,
    timestamps: Callable[[], sp.csr_matrix] | None = None,
) -> RecommenderBase:
    """Fit on matrices, passing event times to models that take them (``fit_timestamps``)."""
    if timestamps is not None and model.fit_timestamps:
        return model.fit(  # type: ignore[call-arg]
            m.interactions, m.item_features, m.customer_features, timestamps=timestamps()
        )
    return model.fit(m.interactions, m.item_features, m.customer_features)


def recommend_rows(
    model: RecommenderBase,
    rows: np.ndarray,
    seen: sp.csr_matrix,
    n: int,
    batch_size: int = 4096,
) -> np.ndarray:
    """Top-n item indices for ``rows``, excluding each row's ``seen`` items, in batches."""
    out = np.full((len(rows), n), -1, dtype=np.int64)
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        items, _ = model.recommend(batch, n, exclude=seen[batch])
        out[start : start + len(batch), : items.shape[1]] = items
    return out


def evaluate(
    model: RecommenderBase,
    fold: Fold,
    config: ProtocolConfig,
    *,
    ks: Sequence[int] | None = None,
) -> EvaluationResult:
    """Rank the full catalog for every evaluated customer of ``fold`` and score it."""
    ks = tuple(ks) if ks is not None else config.ks
    n = max(max(ks), config.k)
    recommended = recommend_rows(model, fold.rows, fold.seen, n, config.batch_size)
    result = evaluate_rankings(
        recommended,
        fold.relevant,
        item_popularity=fold.item_popularity,
        history_length=fold.history_length,
        k=config.k,
        ks=ks,
        segment_edges=config.segment_edges,
    )
    result.extra["recommended"] = recommended
    return result


@dataclass
class ProtocolData:
    """A split in matrix form: the validation fold (tuning) and the test fold (once)."""

    split: Split
    validation: Fold
    test: Fold
    config: ProtocolConfig

    @classmethod
    def from_events(
        cls,
        events: pl.DataFrame,
        config: ProtocolConfig,
        *,
        catalog: pl.DataFrame | None = None,
        customer_attrs: pl.DataFrame | None = None,
    ) -> ProtocolData:
        split = split_events(events, config)
        if split.test.is_empty():
            raise NothingToEvaluate(
                f"no customer has >= {config.min_positives} positives of types "
                f"{list(config.positive_types)} with a warm test item: nothing to evaluate. "
                "On a log with few purchases per customer, count more event types as "
                'positives in the experiment file: [protocol] positive_types = ["purchase", '
                '"add_to_cart"], min_positives = 3'
            )
        extra: dict[str, Any] = {
            "catalog": catalog,
            "customer_attrs": customer_attrs,
            "exclude_types": config.exclude_types or None,
        }
        return cls(
            split=split,
            validation=Fold.from_events(
                split.validation_train, split.validation, split.validation_report, **extra
            ),
            test=Fold.from_events(split.train, split.test, split.report, **extra),
            config=config,
        )

    def report(self) -> dict[str, Any]:
        return {
            "test": self.split.report.to_dict(),
            "validation": self.split.validation_report.to_dict(),
            "test_unreachable_positives": self.test.unreachable,
            "validation_unreachable_positives": self.validation.unreachable,
            "protocol": self.config.to_dict(),
        }
