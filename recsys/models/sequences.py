"""Time-ordered sequences of events as matrices (for session-aware models).

Event times travel as a CSR matrix (customers x items, float64 seconds since the epoch), one
stored entry per (customer, item): :func:`event_times` builds it from validated events; models
whose class sets ``fit_timestamps = True`` accept it as ``fit(..., timestamps=...)``.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp

from features.idmap import IdMap

SECONDS_PER_HOUR = 3600.0


def event_times(events: pl.DataFrame, customers: IdMap, items: IdMap) -> sp.csr_matrix:
    """The ``timestamps`` matrix :meth:`SessionEASE.fit` takes, from validated events.

    Customers x items (on the given id maps), float64 seconds since the epoch of each pair's
    latest event of any type; events of unknown customers or items are left out.
    """
    pairs = events.group_by("customer_id", "item_id").agg(pl.col("timestamp").max())
    rows = customers.index_of(pairs.get_column("customer_id").to_numpy())
    cols = items.index_of(pairs.get_column("item_id").to_numpy())
    seconds = pairs.get_column("timestamp").dt.epoch("us").to_numpy() / 1e6
    known = (rows >= 0) & (cols >= 0)
    return sp.csr_matrix(
        (seconds[known].astype(np.float64), (rows[known], cols[known])),
        shape=(len(customers), len(items)),
        dtype=np.float64,
    )


def ordered_events(timestamps: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Customer, item and time of every stored event, sorted by (customer, time, item)."""
    customers = np.repeat(np.arange(timestamps.shape[0]), np.diff(timestamps.indptr))
    items = timestamps.indices.astype(np.int64)
    times = timestamps.data.astype(np.float64)
    order = np.lexsort((items, times, customers))
    return customers[order], items[order], times[order]


def transition_matrix(
    customers: np.ndarray, items: np.ndarray, n_items: int, window: int, step_decay: float
) -> sp.csr_matrix:
    """Items x items: weighted count of ``j`` following ``i`` within ``window`` steps.

    Built one step at a time, so memory stays at one step's pairs plus the result."""
    total = sp.csr_matrix((n_items, n_items), dtype=np.float32)
    for step in range(1, window + 1):
        same = customers[step:] == customers[:-step]
        if not same.any():
            break
        pairs = sp.csr_matrix(
            (
                np.full(int(same.sum()), step_decay ** (step - 1), dtype=np.float32),
                (items[:-step][same], items[step:][same]),
            ),
            shape=(n_items, n_items),
            dtype=np.float32,
        )
        total = total + pairs
    return sp.csr_matrix(total, dtype=np.float32)


def normalise_transitions(
    transitions: sp.csr_matrix, source_power: float, target_power: float
) -> sp.csr_matrix:
    """``T[i, j] / (out_i ** source_power * in_j ** target_power)`` (degrees: row/column sums)."""
    out_degree = np.maximum(np.asarray(transitions.sum(axis=1)).ravel(), 1.0)
    in_degree = np.maximum(np.asarray(transitions.sum(axis=0)).ravel(), 1.0)
    scaled = (
        sp.diags((out_degree**-source_power).astype(np.float32))
        @ transitions
        @ sp.diags((in_degree**-target_power).astype(np.float32))
    )
    return sp.csr_matrix(scaled, dtype=np.float32)


def recent_items(
    customers: np.ndarray, items: np.ndarray, shape: tuple[int, int], recent: int, decay: float
) -> sp.csr_matrix:
    """Customers x items: the ``recent`` latest items, weighted ``decay ** (rank from last)``."""
    counts = np.bincount(customers, minlength=shape[0])
    ends = np.cumsum(counts)
    from_end = ends[customers] - 1 - np.arange(len(customers))
    keep = from_end < recent
    matrix = sp.csr_matrix(
        (decay ** from_end[keep].astype(np.float32), (customers[keep], items[keep])),
        shape=shape,
        dtype=np.float32,
    )
    matrix.sum_duplicates()
    return matrix


def history_span_hours(customers: np.ndarray, times: np.ndarray, n_customers: int) -> np.ndarray:
    """Hours between each customer's first and last event (0 without events)."""
    first = np.full(n_customers, np.inf)
    last = np.full(n_customers, -np.inf)
    np.minimum.at(first, customers, times)
    np.maximum.at(last, customers, times)
    span = np.where(np.isfinite(first), last - first, 0.0)
    return span / SECONDS_PER_HOUR
