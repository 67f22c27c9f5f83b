"""MLflow: where runs go, what a run records, the model registry and the champion.

Store: ``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///mlruns/mlflow.db`` with artifacts in
``mlruns/artifacts`` (MLflow 3 keeps its file store in maintenance mode and the registry wants
a database; ``make mlflow-ui`` opens the same store).

A model version is an artifact directory ``model/`` in its run, registered under a name
(default ``recsys``) and holding:

- ``model/``: the model saved through the contract (``RecommenderBase.save``),
- ``customers.parquet`` / ``items.parquet``: the id maps of its rows and columns,
- ``matrices/``: the training matrices (``features.matrices.Matrices``), i.e. each
  customer's history, which candidate generation excludes,
- ``meta.json``: data directory, events and catalog paths, feature config, fingerprints.

``recsys promote`` points the ``champion`` alias at a version; publishing calls
:func:`load_model_version`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from features.idmap import IdMap

if TYPE_CHECKING:
    import polars as pl
    from mlflow import MlflowClient

    from features.matrices import Matrices
    from recsys.models.base import RecommenderBase

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
DEFAULT_EXPERIMENT = "recsys"
DEFAULT_MODEL_NAME = "recsys"
CHAMPION = "champion"
MODEL_ARTIFACT = "model"
TRAINING_LIBRARIES = (
    "numpy",
    "scipy",
    "polars",
    "pyarrow",
    "implicit",
    "lightfm-next",
    "mlflow",
    "optuna",
)


# --- store ---------------------------------------------------------------------------------


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` or the local default under ``mlruns/``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def artifact_root(uri: str) -> str | None:
    """Artifacts beside a local SQLite store (``<db dir>/artifacts``); None lets MLflow choose."""
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri.removeprefix("sqlite:///"))
    return (db.parent.resolve() / "artifacts").as_uri()


def configure(uri: str | None = None) -> str:
    """Point MLflow at the store (creating the local folder) and return its URI."""
    import mlflow

    uri = uri or tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def client() -> MlflowClient:
    from mlflow import MlflowClient

    uri = configure()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(name: str = DEFAULT_EXPERIMENT) -> str:
    """The id of experiment ``name``, created (with the local artifact root) when missing."""
    import mlflow

    uri = configure()
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    return str(mlflow.create_experiment(name, artifact_location=artifact_root(uri)))


# --- what a run records --------------------------------------------------------------------


def git_commit(cwd: Path | None = None) -> str:
    """The checkout's commit (``+dirty`` when it has uncommitted changes), or ``unknown``."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}+dirty" if dirty else sha


def library_versions() -> dict[str, str]:
    from recsys.models.base import library_versions as versions

    return versions(*TRAINING_LIBRARIES)


def fingerprint_frame(frame: pl.DataFrame) -> str:
    """Order-independent fingerprint of a frame's content (shape, columns and row hashes)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([frame.height, frame.columns]).encode())
    if frame.height:
        hashes = frame.hash_rows(seed=0).sort()
        digest.update(hashes.to_numpy().tobytes())
    return digest.hexdigest()


def fingerprint_config(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts/lists -> ``a.b.0`` keys with string values (MLflow params)."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple) and any(isinstance(v, Mapping) for v in value):
            out.update(flatten({str(i): v for i, v in enumerate(value)}, f"{name}."))
        else:
            out[name] = str(value)[:6000]
    return out


def log_evaluation(result: Any, prefix: str = "test_") -> None:
    """Metrics at K, curves (as ``{metric}_at_{k}`` and as step-indexed ``curve_`` series),
    per-segment metrics and the whole result as JSON."""
    import mlflow

    mlflow.log_metrics(result.flat(prefix))
    for name, curve in result.curves.items():
        for k, value in curve.items():
            mlflow.log_metric(f"{prefix}curve_{name}", value, step=int(k))
    mlflow.log_dict(result.to_dict(), f"evaluation/{prefix.rstrip('_') or 'result'}.json")


@dataclass
class ModelBundle:
    """What a model version holds besides the model: id maps, matrices, metadata."""

    model: RecommenderBase
    customers: IdMap
    items: IdMap
    matrices: Matrices | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save(directory / "model", id_map_fingerprint=self.items.fingerprint())
        self.customers.save(directory / "customers.parquet")
        self.items.save(directory / "items.parquet")
        if self.matrices is not None:
            self.matrices.save(directory / "matrices")
        meta = {
            **self.meta,
            "customers_fingerprint": self.customers.fingerprint(),
            "items_fingerprint": self.items.fingerprint(),
            "n_customers": len(self.customers),
            "n_items": len(self.items),
        }
        (directory / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
        return directory


def log_model(bundle: ModelBundle) -> str:
    """Save the bundle as the active run's ``model/`` artifact directory; returns its URI."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        bundle.save(Path(tmp) / MODEL_ARTIFACT)
        mlflow.log_artifacts(str(Path(tmp) / MODEL_ARTIFACT), MODEL_ARTIFACT)
    run = mlflow.active_run()
    assert run is not None, "log_model needs an active run"
    return f"{run.info.artifact_uri}/{MODEL_ARTIFACT}"


# --- registry ------------------------------------------------------------------------------


def register(
    run_id: str, name: str = DEFAULT_MODEL_NAME, tags: dict[str, str] | None = None
) -> str:
    """Register the run's ``model/`` directory as a new version of ``name``; returns it."""
    from mlflow.exceptions import MlflowException

    c = client()
    try:
        c.get_registered_model(name)
    except MlflowException:
        c.create_registered_model(name, description="recsys recommender (recsys train/tune)")
    run = c.get_run(run_id)
    version = c.create_model_version(
        name, source=f"{run.info.artifact_uri}/{MODEL_ARTIFACT}", run_id=run_id, tags=tags
    )
    return str(version.version)


def promote(
    name: str = DEFAULT_MODEL_NAME, version: str | int | None = None, alias: str = CHAMPION
) -> str:
    """Point ``alias`` (default ``champion``) at ``version`` (default: the latest).

    No quality check here: ``recsys promote`` checks first (``recsys.promotion``).
    """
    c = client()
    version = resolve_version(name, version)
    c.set_registered_model_alias(name, alias, version)
    return version


def resolve_version(name: str = DEFAULT_MODEL_NAME, version: str | int | None = None) -> str:
    """``version`` checked to exist, or the latest registered version of ``name``."""
    c = client()
    if version is None:
        versions = c.search_model_versions(f"name = '{name}'")
        if not versions:
            raise LookupError(f"no registered versions of model {name!r}")
        version = max(int(v.version) for v in versions)
    c.get_model_version(name, str(version))  # raises a clear error when missing
    return str(version)


@dataclass
class LoadedModel:
    """A registered model version, ready to score: what publishing reads."""

    model: RecommenderBase
    customers: IdMap
    items: IdMap
    version: str
    run_id: str
    data_dir: Path | None
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def catalog_path(self) -> Path | None:
        value = self.meta.get("catalog_path")
        return Path(value) if value else None

    @property
    def events_path(self) -> Path | None:
        value = self.meta.get("events_path")
        return Path(value) if value else None

    @cached_property
    def matrices(self) -> Matrices | None:
        """The training matrices (customer histories), when the version holds them."""
        from features.matrices import Matrices

        directory = self.path / "matrices"
        return Matrices.load(directory) if directory.exists() else None


def load_model_version(
    name: str = DEFAULT_MODEL_NAME,
    alias: str | None = CHAMPION,
    version: str | int | None = None,
) -> LoadedModel:
    """Load a registered version by ``version`` or, when not given, by ``alias``."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from recsys.models.base import RecommenderBase

    c = client()
    try:
        if version is not None:
            mv = c.get_model_version(name, str(version))
        elif alias is not None:
            mv = c.get_model_version_by_alias(name, alias)
        else:
            raise ValueError("give a version or an alias")
    except MlflowException as error:
        raise LookupError(
            f"model {name!r} has no {'version ' + str(version) if version else alias!r} "
            f"in {tracking_uri()} (train one with `recsys train`, then `recsys promote`)"
        ) from error
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=str(mv.source)))
    meta = json.loads((local / "meta.json").read_text())
    data_dir = meta.get("data_dir")
    return LoadedModel(
        model=RecommenderBase.load(local / "model"),
        customers=IdMap.load(local / "customers.parquet"),
        items=IdMap.load(local / "items.parquet"),
        version=str(mv.version),
        run_id=str(mv.run_id),
        data_dir=Path(data_dir) if data_dir else None,
        path=local,
        meta=meta,
    )


@contextmanager
def run(
    name: str,
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    nested: bool = False,
    tags: dict[str, str] | None = None,
) -> Iterator[Any]:
    """Start a run in ``experiment`` tagged with the git commit and library versions."""
    import mlflow

    exp = experiment_id(experiment)
    all_tags = {"git_commit": git_commit(), **(tags or {})}
    with mlflow.start_run(experiment_id=exp, run_name=name, nested=nested, tags=all_tags) as active:
        if not nested:
            mlflow.log_dict(library_versions(), "libraries.json")
            mlflow.set_tags({f"lib.{k}": v for k, v in library_versions().items()})
        yield active


def list_runs(experiment: str = DEFAULT_EXPERIMENT, max_results: int = 50) -> list[Any]:
    """Top-level runs of ``experiment``, newest first."""
    c = client()
    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        return []
    runs = c.search_runs(
        [exp.experiment_id],
        filter_string="",
        max_results=max_results * 4,
        order_by=["attributes.start_time DESC"],
    )
    top = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return top[:max_results]
