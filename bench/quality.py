"""Quality benchmark: every model family, tuned under the evaluation protocol, on MovieLens.

    python bench/quality.py --ratings ../shared/data/ml-latest-small/ratings.csv

Reads any MovieLens ratings file (ratings.csv, u.data, ratings.dat) through the ingestion
layout (rating >= 4 is a positive), cuts it with the protocol (recsys.evaluation.protocol),
tunes each family with Optuna on the validation fold (non-positive weight included), refits
the best on train and evaluates test once (the six families of the issue plus
``session_ease``: EASE with item transitions from each customer's latest items); then tunes
a blend of the four best families on validation the same way. Every family is an MLflow run
(trials nested) in the experiment ``quality``. Prints a table; the last line is one JSON
object with test NDCG@10 per model, the best model and its NDCG@10. ``--record`` appends
the table to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from record import add_block, machine  # bench/record.py: the script's directory is on sys.path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from features.ingest import ingest  # noqa: E402
from recsys import tracking  # noqa: E402
from recsys.evaluation.protocol import ProtocolConfig, ProtocolData, evaluate  # noqa: E402
from recsys.experiment import (  # noqa: E402
    Dataset,
    ExperimentSpec,
    ModelCache,
    fit_on_fold,
    log_outcome,
    rating_strength,
)
from recsys.tuning import search  # noqa: E402

NEG = "features.weights.rating_neg"
NEG_SPACE = {"type": "float", "low": 0.0, "high": 1.0}
STRENGTH = "features.quantity_types"
STRENGTH_SPACE = {"type": "categorical", "choices": ["rating_pos", ""]}
RATING_OFFSET = 3.0
"""Rating strength: a positive's weight is multiplied by (rating - 3) when the search picks
``quantity_types = "rating_pos"`` (4 stars -> 1, 5 stars -> 2); "" weighs all positives 1."""

# Peers: the raw libraries tuned on validation under the same protocol (issue 3).
PEERS = {
    "popularity": 0.0803,
    "bpr": 0.1049,
    "itemknn": 0.1061,
    "lightfm": 0.1114,
    "als": 0.1297,
    "ease": 0.1394,
}
BEST_BAR = 0.1464
TOLERANCE = 0.005


def f(low: float, high: float, log: bool = False) -> dict[str, Any]:
    return {"type": "float", "low": low, "high": high, "log": log}


def i(low: int, high: int, log: bool = False) -> dict[str, Any]:
    return {"type": "int", "low": low, "high": high, "log": log}


def c(*choices: Any) -> dict[str, Any]:
    return {"type": "categorical", "choices": list(choices)}


# family -> (model params to start from, search space, trials)
FAMILIES: dict[str, tuple[dict[str, Any], dict[str, dict[str, Any]], int]] = {
    "popularity": (
        {"kind": "global"},
        {"model.params.confidence": c("linear", "binary")},
        8,
    ),
    "itemknn": (
        {"similarity": "bm25", "k": 789, "bm25_k1": 2.68, "bm25_b": 0.147},
        {
            "model.params.similarity": c("cosine", "bm25", "tfidf"),
            "model.params.k": i(10, 1000, log=True),
            "model.params.bm25_k1": f(0.1, 3.0),
            "model.params.bm25_b": f(0.0, 1.0),
        },
        40,
    ),
    "als": (
        {"factors": 64, "regularization": 20.0, "alpha": 2.0, "iterations": 15},
        {
            "model.params.factors": i(16, 256, log=True),
            "model.params.regularization": f(1e-3, 50.0, log=True),
            "model.params.alpha": f(0.5, 100.0, log=True),
            "model.params.iterations": i(5, 40),
        },
        40,
    ),
    "bpr": (
        {"factors": 64, "learning_rate": 0.01, "regularization": 0.01, "iterations": 100},
        {
            "model.params.factors": i(16, 256, log=True),
            "model.params.learning_rate": f(1e-3, 0.2, log=True),
            "model.params.regularization": f(1e-5, 0.1, log=True),
            "model.params.iterations": i(20, 400, log=True),
        },
        30,
    ),
    "lightfm": (
        {
            "loss": "warp",
            "no_components": 27,
            "learning_rate": 0.0326,
            "item_alpha": 3.46e-7,
            "user_alpha": 1.33e-5,
            "epochs": 76,
            "max_sampled": 26,
        },
        {
            "model.params.no_components": i(16, 128, log=True),
            "model.params.learning_rate": f(0.005, 0.2, log=True),
            "model.params.item_alpha": f(1e-8, 1e-3, log=True),
            "model.params.user_alpha": f(1e-8, 1e-3, log=True),
            "model.params.epochs": i(5, 80, log=True),
            "model.params.max_sampled": i(5, 100, log=True),
        },
        25,
    ),
    "ease": (
        {"l2": 150.0},
        {"model.params.l2": f(10.0, 5000.0, log=True)},
        20,
    ),
    # EASE plus item transitions from each customer's latest items (recsys.models.session_ease)
    "session_ease": (
        {
            "l2": 100.0,
            "seq_weight": 2.0,
            "window": 20,
            "step_decay": 1.0,
            "recent": 10,
            "recent_decay": 0.9,
            "session_hours": 0.5,
            "gate": "exp",
            "source_norm": 0.5,
            "target_norm": 0.2,
        },
        {
            "model.params.l2": f(30.0, 2000.0, log=True),
            "model.params.seq_weight": f(0.2, 10.0, log=True),
            "model.params.window": i(2, 50, log=True),
            "model.params.step_decay": f(0.3, 1.0),
            "model.params.recent": i(1, 50, log=True),
            "model.params.recent_decay": f(0.3, 1.0),
            "model.params.session_hours": f(0.05, 48.0, log=True),
            "model.params.gate": c("exp", "step"),
            "model.params.source_norm": f(0.0, 1.0),
            "model.params.target_norm": f(0.0, 0.5),
        },
        25,
    ),
}
BLEND_TRIALS = 40
BLEND_COMPONENTS = 4


def family_spec(family: str, params: dict[str, Any], space: dict[str, Any]) -> ExperimentSpec:
    if family != "blend":
        space = {**space, NEG: NEG_SPACE, STRENGTH: STRENGTH_SPACE}
    return ExperimentSpec.from_dict(
        {
            "name": f"quality-{family}",
            "data": {"path": "(bench)", "layout": "movielens", "source": "movielens"},
            "features": {
                "weights": {"rating_pos": 1.0, "rating_neg": 0.0},
                "confidence": "linear",
                "quantity_types": "rating_pos",
            },
            "model": {"name": family, "params": params},
            "tune": {"space": space, "metric": "ndcg", "seed": 0},
            "mlflow": {"experiment": "quality", "log_model": False, "register": False},
        }
    )


def blend_spec(components: list[ExperimentSpec]) -> ExperimentSpec:
    models = []
    for spec in components:
        features = spec.raw["features"]
        models.append(
            {
                "name": spec.model_name,
                "params": spec.model_params,
                "features": {
                    "weights": {"rating_neg": features["weights"]["rating_neg"]},
                    "quantity_types": features.get("quantity_types", ""),
                },
            }
        )
    n = len(models)
    # the first (best on validation) component keeps weight 1: only the ratios matter
    space: dict[str, dict[str, Any]] = {
        f"model.params.weights.{j}": f(0.0, 1.0) for j in range(1, n)
    }
    space["model.params.fusion"] = c("rrf", "score")
    space["model.params.rrf_k"] = f(1.0, 100.0, log=True)
    params = {"models": models, "weights": [1.0] * n, "fusion": "rrf", "rrf_k": 60.0}
    return family_spec("blend", params, space)


def run_family(
    spec: ExperimentSpec,
    dataset: Dataset,
    data: ProtocolData,
    trials: int,
    timeout: float,
    cache: ModelCache,
) -> dict[str, Any]:
    start = time.perf_counter()
    with tracking.run(spec.name, experiment="quality", tags={"kind": "tune"}):
        found = search(spec, data, trials=trials, timeout=timeout, cache=cache, show_progress=True)
        best = found.best_spec
        model = fit_on_fold(best, data.test)
        result = evaluate(model, data.test, data.config)
        import mlflow

        mlflow.log_params({f"best.{k}": str(v) for k, v in found.best.items()})
        mlflow.log_metric("validation_best_ndcg", found.best_value)
        log_outcome(best, dataset, data, model, result)
    return {
        "spec": best,
        "best": found.best,
        "validation": found.best_value,
        "test": result.ndcg,
        "recall": result.metrics["recall"],
        "coverage": result.metrics["coverage"],
        "trials": found.trials,
        "seconds": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratings", required=True, type=Path, help="MovieLens ratings file")
    parser.add_argument(
        "--budget-minutes", type=float, default=25.0, help="time budget for all searches"
    )
    parser.add_argument(
        "--trials-scale", type=float, default=1.0, help="multiply every family's trial count"
    )
    parser.add_argument("--families", nargs="*", default=list(FAMILIES), help="subset")
    parser.add_argument("--record", action="store_true", help="append results to BENCHMARKS.md")
    args = parser.parse_args(argv)
    if not args.ratings.exists():
        parser.error(f"ratings file not found: {args.ratings}")
    unknown = set(args.families) - set(FAMILIES)
    if unknown:
        parser.error(f"unknown families: {sorted(unknown)}")

    started = time.perf_counter()
    ingested = ingest(args.ratings, layout="movielens")
    dataset = Dataset(
        events=rating_strength(ingested.events, RATING_OFFSET),
        report=ingested.report.to_dict(),
        data_dir=args.ratings.resolve().parent,
        events_path=args.ratings.resolve(),
    )
    data = ProtocolData.from_events(dataset.events, ProtocolConfig.for_source("movielens"))
    print(data.split.report.summary(), file=sys.stderr)
    print(data.split.validation_report.summary(), file=sys.stderr)

    budget = args.budget_minutes * 60.0
    planned = {name: max(1, round(FAMILIES[name][2] * args.trials_scale)) for name in args.families}
    blend_trials = max(1, round(BLEND_TRIALS * args.trials_scale))
    cache: ModelCache = {}
    results: dict[str, dict[str, Any]] = {}
    for family in args.families:
        params, space, _ = FAMILIES[family]
        # a time share proportional to this family's trials among what is left (blend counts 1/4)
        left = sum(planned[name] for name in args.families if name not in results)
        remaining = budget - (time.perf_counter() - started)
        share = max(30.0, remaining * planned[family] / (left + blend_trials / 4))
        print(f"== {family}: {planned[family]} trials, up to {share:.0f}s", file=sys.stderr)
        results[family] = run_family(
            family_spec(family, params, space), dataset, data, planned[family], share, cache
        )
        print(
            f"   validation {results[family]['validation']:.4f} test "
            f"{results[family]['test']:.4f} ({results[family]['seconds']:.0f}s) "
            f"{results[family]['best']}",
            file=sys.stderr,
        )

    ranked = sorted(
        (r for name, r in results.items() if name != "popularity"),
        key=lambda r: -r["validation"],
    )[:BLEND_COMPONENTS]
    if len(ranked) >= 2:
        spec = blend_spec([r["spec"] for r in ranked])
        remaining = max(60.0, budget - (time.perf_counter() - started))
        print(f"== blend of {[r['spec'].model_name for r in ranked]}", file=sys.stderr)
        results["blend"] = run_family(spec, dataset, data, blend_trials, remaining, cache)

    ndcgs = {name: round(r["test"], 4) for name, r in results.items()}
    best_model = max(ndcgs, key=lambda name: ndcgs[name])
    table = render_table(results)
    print(table)
    elapsed = time.perf_counter() - started
    print(f"total {elapsed / 60:.1f} min on {os.cpu_count()} cores", file=sys.stderr)
    if args.record:
        append_record(table, args.ratings, elapsed)
    print(
        json.dumps(
            {"models": ndcgs, "best_model": best_model, "best_ndcg_at_10": ndcgs[best_model]}
        )
    )
    return 0


def render_table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| model | validation NDCG@10 | test NDCG@10 | peer | bar | recall@10 | coverage@10 "
        "| trials | seconds |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    best = max(r["test"] for r in results.values())
    for name, r in results.items():
        peer = PEERS.get(name)
        if peer is not None:
            bar = "ok" if r["test"] >= peer - TOLERANCE else "BELOW"
            peer_cell = f"{peer:.4f}"
        else:
            bar, peer_cell = "", "-"
        if r["test"] == best:
            bar = (bar + " best " + ("ok" if best >= BEST_BAR else "BELOW")).strip()
        lines.append(
            f"| {name} | {r['validation']:.4f} | {r['test']:.4f} | {peer_cell} | {bar} | "
            f"{r['recall']:.4f} | {r['coverage']:.4f} | {r['trials']} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def append_record(table: str, ratings: Path, elapsed: float) -> None:
    """The whole table, as a dated ``###`` block under ``## quality`` in BENCHMARKS.md."""
    intro = (
        f"`python bench/quality.py --ratings {ratings}` on {machine()}, {elapsed / 60:.1f} min. "
        f"Test NDCG@10 under the evaluation protocol (docs/evaluation.md); bars: each model >= "
        f"peer - {TOLERANCE}, best >= {BEST_BAR}."
    )
    add_block("quality", f"{intro}\n\n{table}")


if __name__ == "__main__":
    raise SystemExit(main())
