"""Hyper-parameter search (Optuna) under the protocol: pick on validation, test once.

The search space lives in the experiment file, over dotted paths of the spec::

    [tune]
    trials = 30          # and/or timeout = 600 (seconds)
    metric = "ndcg"      # at the protocol's K, maximised on the validation fold
    seed = 0
    [tune.space]
    "model.params.factors" = { type = "int", low = 16, high = 256, log = true }
    "model.params.similarity" = { type = "categorical", choices = ["cosine", "bm25"] }
    "features.weights.rating_neg" = { type = "float", low = 0.0, high = 1.0 }

Every trial is a nested MLflow run (its parameters and validation metrics). The spec's own
values are tried first, so the search never ends below the configuration it started from.
The best trial is then refitted on the full train split (train + validation positives) and
evaluated on test, once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from recsys.evaluation.protocol import ProtocolData, evaluate
from recsys.experiment import (
    Dataset,
    ExperimentSpec,
    ModelCache,
    TrainOutcome,
    evaluate_and_log,
    fit_on_fold,
    get_path,
    load_dataset,
    protocol_data,
)

if TYPE_CHECKING:
    import optuna

    from recsys.evaluation.metrics import EvaluationResult

SPACE_TYPES = ("int", "float", "categorical")


def check_space(space: Mapping[str, Mapping[str, Any]]) -> None:
    """Reject malformed search-space entries with a message naming the entry."""
    for path, dim in space.items():
        kind = dim.get("type")
        if kind not in SPACE_TYPES:
            raise ValueError(f"tune.space.{path}: type must be one of {SPACE_TYPES}")
        if kind == "categorical":
            if not dim.get("choices"):
                raise ValueError(f"tune.space.{path}: categorical needs `choices`")
        elif "low" not in dim or "high" not in dim or dim["low"] > dim["high"]:
            raise ValueError(f"tune.space.{path}: needs low <= high")
        elif dim.get("log") and dim["low"] <= 0:
            raise ValueError(f"tune.space.{path}: log scale needs low > 0")


def suggest(trial: optuna.Trial, space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Sample one point of the space: ``{dotted path: value}``."""
    values: dict[str, Any] = {}
    for path, dim in space.items():
        kind = dim["type"]
        if kind == "int":
            values[path] = trial.suggest_int(
                path, int(dim["low"]), int(dim["high"]), log=bool(dim.get("log", False))
            )
        elif kind == "float":
            values[path] = trial.suggest_float(
                path, float(dim["low"]), float(dim["high"]), log=bool(dim.get("log", False))
            )
        else:
            values[path] = trial.suggest_categorical(path, list(dim["choices"]))
    return values


def start_point(
    spec: ExperimentSpec, space: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any] | None:
    """The spec's own values for the space's paths, when all are present and in range."""
    point: dict[str, Any] = {}
    for path, dim in space.items():
        value = get_path(spec.raw, path)
        if value is None:
            return None
        if dim["type"] == "categorical":
            if value not in dim["choices"]:
                return None
        elif not isinstance(value, int | float) or not dim["low"] <= value <= dim["high"]:
            return None  # out of range, or a symbolic value such as "auto"
        point[path] = value
    return point


@dataclass
class TuneResult:
    best: dict[str, Any]
    best_value: float
    best_spec: ExperimentSpec
    trials: int
    history: list[tuple[dict[str, Any], float]] = field(default_factory=list)
    validation: EvaluationResult | None = None


def search(
    spec: ExperimentSpec,
    data: ProtocolData,
    *,
    trials: int | None = None,
    timeout: float | None = None,
    cache: ModelCache | None = None,
    log_trials: bool = True,
    show_progress: bool = True,
    on_trial: Callable[[int, dict[str, Any], float], None] | None = None,
) -> TuneResult:
    """Optuna search on the validation fold; returns the best point and its spec."""
    import optuna

    settings = spec.tune
    space: dict[str, dict[str, Any]] = dict(settings.get("space", {}))
    check_space(space)
    metric = str(settings.get("metric", "ndcg"))
    trials = trials if trials is not None else int(settings.get("trials", 20))
    timeout = timeout if timeout is not None else settings.get("timeout")
    cache = cache if cache is not None else {}
    history: list[tuple[dict[str, Any], float]] = []
    results: dict[int, EvaluationResult] = {}

    def objective(trial: optuna.Trial) -> float:
        point = suggest(trial, space)
        candidate = spec.with_overrides(point)
        model = fit_on_fold(candidate, data.validation, cache)
        result = evaluate(model, data.validation, data.config, ks=(data.config.k,))
        value = float(result.metrics[metric])
        if not math.isfinite(value):
            value = 0.0
        results[trial.number] = result
        history.append((point, value))
        if log_trials:
            _log_trial(spec, trial.number, point, result)
        if on_trial is not None:
            on_trial(trial.number, point, value)
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=int(settings.get("seed", 0)))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    first = start_point(spec, space)
    if first is not None and space:
        study.enqueue_trial(first)
    n_trials = max(1, trials) if space else 1
    study.optimize(objective, n_trials=n_trials, timeout=timeout, show_progress_bar=show_progress)
    best = study.best_trial
    best_point = {k: best.params[k] for k in space}
    return TuneResult(
        best=best_point,
        best_value=float(best.value if best.value is not None else 0.0),
        best_spec=spec.with_overrides(best_point),
        trials=len(study.trials),
        history=history,
        validation=results.get(best.number),
    )


def _log_trial(
    spec: ExperimentSpec, number: int, point: dict[str, Any], result: EvaluationResult
) -> None:
    import mlflow

    parent = mlflow.active_run()
    experiment = parent.info.experiment_id if parent is not None else None
    with mlflow.start_run(
        run_name=f"{spec.name}-trial-{number}", nested=True, experiment_id=experiment
    ):
        mlflow.set_tag("kind", "trial")
        mlflow.log_params({k: str(v) for k, v in point.items()})
        mlflow.log_metrics(result.flat("validation_"))


def tune(
    spec: ExperimentSpec,
    *,
    dataset: Dataset | None = None,
    trials: int | None = None,
    timeout: float | None = None,
    progress: Callable[[str], None] = lambda _: None,
    show_progress: bool = True,
) -> TrainOutcome:
    """The ``recsys tune`` flow: search (nested runs), refit the best on train, test once."""
    import mlflow

    from recsys import tracking

    progress("loading data")
    dataset = dataset or load_dataset(spec)
    progress("splitting")
    data = protocol_data(spec, dataset)
    experiment = spec.mlflow.get("experiment", tracking.DEFAULT_EXPERIMENT)
    with tracking.run(f"{spec.name}-tune", experiment=experiment, tags={"kind": "tune"}) as run:
        progress("searching")
        found = search(spec, data, trials=trials, timeout=timeout, show_progress=show_progress)
        mlflow.log_params({f"best.{k}": str(v) for k, v in found.best.items()})
        mlflow.log_metric("trials", found.trials)
        mlflow.log_metric(f"validation_best_{spec.tune.get('metric', 'ndcg')}", found.best_value)
        if found.validation is not None:
            mlflow.log_metrics(found.validation.flat("validation_"))
        best = found.best_spec
        progress("refitting the best on train and evaluating test once")
        model = fit_on_fold(best, data.test)
        outcome = evaluate_and_log(best, dataset, data, model, run.info.run_id, progress=progress)
    return replace(
        outcome,
        validation=found.validation,
        extra={"best": found.best, "best_validation": found.best_value, "trials": found.trials},
    )
