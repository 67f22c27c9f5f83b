"""Figures logged with every evaluation: metrics over K, and popularity of what is recommended.

Matplotlib with the non-interactive Agg backend; each function returns a Figure (the caller
logs it with ``mlflow.log_figure`` and closes it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from recsys.evaluation.metrics import EvaluationResult

ACCURACY = ("precision", "recall", "ndcg", "map", "hit_rate")


def _figure(width: float = 7.0, height: float = 4.0) -> Figure:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def metrics_over_k(result: EvaluationResult, title: str = "") -> Figure:
    """Accuracy metrics (left) and coverage (right) as curves over K."""
    fig = _figure(10.0, 4.0)
    left, right = fig.subplots(1, 2)
    for name in ACCURACY:
        curve = result.curves.get(name, {})
        ks = sorted(curve)
        left.plot(ks, [curve[k] for k in ks], marker="o", label=name)
    left.set_xscale("log")
    left.set_xlabel("K")
    left.set_title("accuracy at K")
    left.legend()
    coverage = result.curves.get("coverage", {})
    ks = sorted(coverage)
    right.plot(ks, [coverage[k] for k in ks], marker="o", color="tab:gray")
    right.set_xscale("log")
    right.set_xlabel("K")
    right.set_title("catalog coverage at K")
    if title:
        fig.suptitle(title)
    return fig


def popularity_of_recommended(
    recommended: np.ndarray, item_popularity: np.ndarray, k: int, title: str = ""
) -> Figure:
    """Distribution of item popularity: items in top-K lists vs the whole catalog."""
    fig = _figure()
    ax = fig.subplots()
    top = np.asarray(recommended)[:, :k]
    rec_pop = np.asarray(item_popularity)[top[top >= 0]]
    floor = max(float(np.min(item_popularity[item_popularity > 0], initial=1.0)), 1e-6)
    bins = np.logspace(np.log10(floor), 0, 30).tolist()
    for values, label in ((np.asarray(item_popularity), "catalog"), (rec_pop, f"top-{k}")):
        if values.size:
            share = np.full(values.size, 1.0 / values.size)
            ax.hist(np.maximum(values, floor), bins=bins, weights=share, alpha=0.5, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("item popularity (share of training customers)")
    ax.set_ylabel("share of items")
    ax.set_title(title or f"popularity of recommended items (top-{k}) vs catalog")
    ax.legend()
    return fig


def log_plots(result: EvaluationResult, item_popularity: np.ndarray, prefix: str = "test") -> None:
    """Log both figures of an evaluation to the active MLflow run."""
    import mlflow

    fig = metrics_over_k(result, title=prefix)
    mlflow.log_figure(fig, f"plots/{prefix}_metrics_over_k.png")
    recommended = result.extra.get("recommended")
    if recommended is not None:
        fig = popularity_of_recommended(recommended, item_popularity, result.k)
        mlflow.log_figure(fig, f"plots/{prefix}_popularity.png")
