"""Ranking metrics at K, computed for a batch of customers at once (no per-customer loop).

Inputs are the top-``max(ks)`` recommended item indices per customer (``-1`` pads short
lists) and the relevant (test) items as a CSR matrix with one row per customer. Definitions,
with ``hits_i`` = 1 when the item at rank i (0-based) is relevant and ``R`` = the customer's
number of relevant items:

- precision@K = sum(hits[:K]) / K
- recall@K = sum(hits[:K]) / R
- NDCG@K = sum(hits_i / log2(i + 2), i < K) / sum(1 / log2(i + 2), i < min(R, K))
- MAP@K: mean of AP@K = sum(hits_i * precision@(i+1), i < K) / min(R, K)
- hit rate@K = 1 when any of the first K items is relevant
- coverage@K = distinct items recommended in anybody's top K / catalog size
- novelty@K = mean over recommended items of -log2(popularity), popularity being the share
  of training customers who have the item (self-information, higher = less known items)
- popularity_bias@K = mean popularity (same share) of the recommended items, i.e. the
  average recommendation popularity (ARP); compare with the catalog mean.

Customer-level metrics are averaged over customers; a segment is a group of customers by
history length (number of items they have in train).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

DEFAULT_K = 10
DEFAULT_KS: tuple[int, ...] = (1, 5, 10, 20, 50, 100)
DEFAULT_SEGMENT_EDGES: tuple[int, ...] = (1, 10, 25, 50, 100, 250)
"""History-length segments: [1, 10), [10, 25), ..., [250, inf)."""

CUSTOMER_METRICS = ("precision", "recall", "ndcg", "map", "hit_rate")
CATALOG_METRICS = ("coverage", "novelty", "popularity_bias")


def hit_matrix(recommended: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """Boolean (n_customers, n) array: is recommended[u, i] one of row u's relevant items."""
    recommended = np.asarray(recommended)
    n_rows, n = recommended.shape
    relevant = sp.csr_matrix(relevant)
    if relevant.shape[0] != n_rows:
        raise ValueError(f"{n_rows} recommendation rows but {relevant.shape[0]} relevant rows")
    n_cols = np.int64(max(relevant.shape[1], 1))
    rel = relevant.tocoo()
    rel_keys = np.unique(rel.row.astype(np.int64) * n_cols + rel.col.astype(np.int64))
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), n)
    rec_keys = rows * n_cols + recommended.ravel().astype(np.int64)
    hits = np.isin(rec_keys, rel_keys, assume_unique=False)
    hits &= recommended.ravel() >= 0
    return hits.reshape(n_rows, n)


def _discounts(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, n + 2, dtype=np.float64))


def customer_metrics(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-customer precision, recall, NDCG, AP and hit at ``k`` (arrays of n_customers)."""
    h = hits[:, :k].astype(np.float64)
    n_rel = np.asarray(n_relevant, dtype=np.float64)
    if np.any(n_rel <= 0):
        raise ValueError("every evaluated customer needs at least one relevant item")
    n_hits = h.sum(axis=1)
    disc = _discounts(k)
    dcg = (h * disc[: h.shape[1]]).sum(axis=1)
    ideal_cum = np.concatenate([[0.0], np.cumsum(disc)])
    ideal_n = np.minimum(n_rel, k).astype(np.int64)
    idcg = ideal_cum[ideal_n]
    precision_at_i = np.cumsum(h, axis=1) / np.arange(1, h.shape[1] + 1)
    ap = (precision_at_i * h).sum(axis=1) / np.minimum(n_rel, k)
    return {
        "precision": n_hits / k,
        "recall": n_hits / n_rel,
        "ndcg": dcg / idcg,
        "map": ap,
        "hit_rate": (n_hits > 0).astype(np.float64),
    }


def catalog_metrics(
    recommended: np.ndarray, item_popularity: np.ndarray, k: int
) -> dict[str, float]:
    """Coverage, novelty and popularity bias of the top-``k`` lists.

    ``item_popularity`` is the share of training customers having each item (0..1).
    """
    top = np.asarray(recommended)[:, :k]
    items = top[top >= 0]
    pop = np.asarray(item_popularity, dtype=np.float64)
    n_items = len(pop)
    if items.size == 0:
        return {"coverage": 0.0, "novelty": 0.0, "popularity_bias": 0.0}
    floor = float(pop[pop > 0].min()) if np.any(pop > 0) else 1.0  # unseen items: rarest
    p = np.maximum(pop[items], floor)
    return {
        "coverage": float(np.unique(items).size / n_items),
        "novelty": float(np.mean(-np.log2(p))),
        "popularity_bias": float(np.mean(pop[items])),
    }


def segment_labels(history_length: np.ndarray, edges: Sequence[int]) -> np.ndarray:
    """Label each customer with its history-length bucket, e.g. ``"10-24"`` or ``"250+"``."""
    edges = list(edges)
    names = [f"{lo}-{hi - 1}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    names.append(f"{edges[-1]}+")
    below = f"<{edges[0]}"
    idx = np.searchsorted(np.asarray(edges), np.asarray(history_length), side="right") - 1
    return np.array([below if i < 0 else names[i] for i in idx], dtype=object)


@dataclass
class EvaluationResult:
    """Metrics at ``k``, curves over ``ks``, per-segment metrics at ``k``."""

    k: int
    metrics: dict[str, float]
    curves: dict[str, dict[int, float]]
    segments: dict[str, dict[str, float]]
    n_customers: int
    catalog_popularity: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ndcg(self) -> float:
        return self.metrics["ndcg"]

    def flat(self, prefix: str = "") -> dict[str, float]:
        """``{prefix}{metric}_at_{k}`` for every metric and K, plus segment metrics."""
        out: dict[str, float] = {}
        for name, curve in self.curves.items():
            for kk, v in curve.items():
                out[f"{prefix}{name}_at_{kk}"] = v
        for name, v in self.metrics.items():
            out[f"{prefix}{name}_at_{self.k}"] = v
        for seg, values in self.segments.items():
            for name, v in values.items():
                key = seg.replace("+", "plus").replace("<", "lt")
                out[f"{prefix}segment_{key}_{name}_at_{self.k}"] = v
        out[f"{prefix}n_customers"] = float(self.n_customers)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "metrics": self.metrics,
            "curves": {m: {str(k): v for k, v in c.items()} for m, c in self.curves.items()},
            "segments": self.segments,
            "n_customers": self.n_customers,
            "catalog_popularity": self.catalog_popularity,
        }


def evaluate_rankings(
    recommended: np.ndarray,
    relevant: sp.csr_matrix,
    *,
    item_popularity: np.ndarray,
    history_length: np.ndarray | None = None,
    k: int = DEFAULT_K,
    ks: Sequence[int] = DEFAULT_KS,
    segment_edges: Sequence[int] = DEFAULT_SEGMENT_EDGES,
) -> EvaluationResult:
    """All metrics for top-N lists (N >= max(ks, k)) against the relevant items."""
    recommended = np.asarray(recommended)
    ks = sorted(set(ks) | {k})
    if recommended.shape[1] < ks[-1]:
        raise ValueError(f"need top-{ks[-1]} lists, got {recommended.shape[1]}")
    relevant = sp.csr_matrix(relevant)
    n_relevant = np.diff(relevant.indptr)
    hits = hit_matrix(recommended, relevant)
    curves: dict[str, dict[int, float]] = {m: {} for m in (*CUSTOMER_METRICS, *CATALOG_METRICS)}
    at_k: dict[str, np.ndarray] = {}
    for kk in ks:
        per_customer = customer_metrics(hits, n_relevant, kk)
        if kk == k:
            at_k = per_customer
        for name, values in per_customer.items():
            curves[name][kk] = float(values.mean()) if values.size else 0.0
        for name, v in catalog_metrics(recommended, item_popularity, kk).items():
            curves[name][kk] = v
    metrics = {name: curves[name][k] for name in curves}
    segments: dict[str, dict[str, float]] = {}
    if history_length is not None and len(n_relevant):
        labels = segment_labels(history_length, segment_edges)
        for seg in dict.fromkeys(sorted(labels, key=_segment_order)):
            mask = labels == seg
            segments[seg] = {name: float(v[mask].mean()) for name, v in at_k.items()}
            segments[seg]["customers"] = float(mask.sum())
    return EvaluationResult(
        k=k,
        metrics=metrics,
        curves=curves,
        segments=segments,
        n_customers=len(n_relevant),
        catalog_popularity=float(np.mean(item_popularity)) if len(item_popularity) else 0.0,
    )


def _segment_order(label: str) -> int:
    digits = label.lstrip("<").split("-")[0].rstrip("+")
    return -1 if label.startswith("<") else int(digits)
