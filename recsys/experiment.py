"""Experiment specs (TOML) and the train flow behind ``recsys train``.

One file = one reproducible MLflow run::

    name = "als-shop"
    [data]                  # a synthetic shop preset, a file/folder, or an ingest folder
    synth = "tiny"          # or: path = "...", layout = "movielens", catalog = "..."
                            # (+ the source options of `recsys ingest`: mapping, set,
                            # timestamp_format, timezone, event_aliases, event_types)
                            # or: ingest = "data/shop" (a `recsys ingest --out` folder)
    source = "shop"         # "shop" (positives: purchase) or "movielens" (rating_pos)
    item_features = false   # catalog -> item feature matrix (LightFM's hybrid path)
    rating_offset = 3.0     # optional: quantity = rating - 3 (see rating_strength)
    [protocol]              # optional overrides of recsys.evaluation.protocol.ProtocolConfig
    [features]              # features.interactions.InteractionConfig
    weights = { view = 0.5, purchase = 3.0 }
    [model]
    name = "als"
    params = { factors = 64 }
    [tune]                  # for `recsys tune`: Optuna search space over dotted paths
    trials = 20
    space = { "model.params.factors" = { type = "int", low = 16, high = 256, log = true } }
    [mlflow]
    experiment = "recsys"   # model_name = "recsys", register = true, refit_all = true

A blend lists its components under ``model.params.models`` (``name``, ``params`` and an
optional ``features`` override each); they are fitted first, then fused with ``weights``.
"""

from __future__ import annotations

import copy
import json
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import scipy.sparse as sp

from features.interactions import InteractionConfig
from features.matrices import Matrices, build_matrices
from recsys.evaluation.protocol import (
    Fold,
    ProtocolConfig,
    ProtocolData,
    evaluate,
    fit_matrices,
)

if TYPE_CHECKING:
    from features.source_options import SourceOptions
    from recsys.evaluation.metrics import EvaluationResult
    from recsys.models.base import RecommenderBase

DATA_ROOT = Path("data")
"""Where ingested experiment data goes by default (git-ignored): data/<experiment name>/."""

DATA_SOURCES: tuple[str, ...] = ("synth", "path", "ingest")
"""``[data]`` keys naming where the data comes from (exactly one)."""
DATA_KEYS: tuple[str, ...] = (
    *DATA_SOURCES,
    "source",
    "item_features",
    "customer_features",
    "rating_offset",
    "write",
    "dir",
    "seed",
    "n_customers",
    "n_items",
    "n_events",
)
"""``[data]`` keys besides the source options (``features.source_options.KEYS``)."""


# --- the spec ------------------------------------------------------------------------------


def set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    """Set ``a.b.0.c`` in nested dicts/lists (creating dicts on the way)."""
    parts = path.split(".")
    node: Any = tree
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            index = int(part)
            if last:
                node[index] = value
            else:
                node = node[index]
            continue
        if last:
            node[part] = value
        else:
            node = node.setdefault(part, {})


def get_path(tree: Mapping[str, Any], path: str, default: Any = None) -> Any:
    node: Any = tree
    for part in path.split("."):
        if isinstance(node, list):
            try:
                node = node[int(part)]
            except (ValueError, IndexError):
                return default
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            return default
    return node


@dataclass
class ExperimentSpec:
    """A parsed experiment file; ``raw`` is the full dict (logged as params)."""

    raw: dict[str, Any]
    path: Path | None = None

    # ---- construction ---------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> ExperimentSpec:
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"experiment file not found: {path}") from None
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"{path}: invalid TOML: {error}") from None
        raw.setdefault("name", path.stem)
        spec = cls(raw, path)
        spec.validate()
        return spec

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ExperimentSpec:
        spec = cls(copy.deepcopy(dict(raw)))
        spec.validate()
        return spec

    def with_overrides(self, overrides: Mapping[str, Any]) -> ExperimentSpec:
        """A copy with dotted-path values replaced (how tuning applies a trial)."""
        raw = copy.deepcopy(self.raw)
        for key, value in overrides.items():
            set_path(raw, key, value)
        return ExperimentSpec(raw, self.path)

    def validate(self) -> None:
        from recsys.models import MODELS

        self.source_options()  # raises on bad [data] keys and source options
        if self.model_name not in MODELS:
            raise ValueError(
                f"{self.name}: unknown model {self.model_name!r}; known: {', '.join(MODELS)}"
            )
        if self.data.get("source", "shop") not in ("shop", "movielens"):
            raise ValueError(f"{self.name}: data.source must be 'shop' or 'movielens'")
        self.protocol()  # raises on bad protocol values
        self.interaction_config()

    # ---- views ----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.raw.get("name", "experiment"))

    @property
    def data(self) -> dict[str, Any]:
        return dict(self.raw.get("data", {}))

    @property
    def model_name(self) -> str:
        return str(self.raw.get("model", {}).get("name", ""))

    @property
    def model_params(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self.raw.get("model", {}).get("params", {})))

    @property
    def tune(self) -> dict[str, Any]:
        return dict(self.raw.get("tune", {}))

    @property
    def mlflow(self) -> dict[str, Any]:
        return dict(self.raw.get("mlflow", {}))

    def source_options(self) -> SourceOptions | None:
        """The ``[data]`` source options (None for ``synth`` and ``ingest`` data); raises a
        ValueError naming the experiment for an unknown key or a bad value."""
        from features.source_options import KEYS, SourceOptions

        data = self.data
        unknown = sorted(set(data) - set(DATA_KEYS) - set(KEYS))
        if unknown:
            raise ValueError(
                f"{self.name}: unknown [data] key(s) {unknown}; known: "
                f"{', '.join(DATA_KEYS + KEYS)}"
            )
        given = [k for k in DATA_SOURCES if data.get(k)]
        if len(given) != 1:
            raise ValueError(
                f"{self.name}: [data] needs `synth = PRESET`, `path = FILE` or "
                "`ingest = FOLDER`, exactly one" + (f" (it has {given})" if given else "")
            )
        options = {k: data[k] for k in KEYS if k in data}
        if given[0] != "path":
            if options:
                raise ValueError(
                    f"{self.name}: [data] {given[0]} takes no source options {sorted(options)} "
                    "(they apply to `path = FILE`; an ingest folder keeps its own in "
                    "source.json)"
                )
            return None
        try:
            return SourceOptions.from_dict(options)
        except ValueError as error:
            raise ValueError(f"{self.name}: [data] {error}") from None

    def event_weights(self) -> dict[str, float]:
        """Weights of the event types the data declares (``event_types``, or those recorded
        in an ingest folder's source.json)."""
        from features.source_options import recorded_weights

        if self.data.get("ingest"):
            return recorded_weights(self.data["ingest"])
        options = self.source_options()
        return options.weights if options is not None else {}

    def protocol(self) -> ProtocolConfig:
        source = self.data.get("source", "shop")
        overrides = dict(self.raw.get("protocol", {}))
        for key in ("positive_types", "exclude_types", "ks", "segment_edges"):
            if key in overrides:
                overrides[key] = tuple(overrides[key])
        return ProtocolConfig.for_source(source, **overrides)

    def interaction_config(self, extra: Mapping[str, Any] | None = None) -> InteractionConfig:
        base = dict(self.raw.get("features", {}))
        if extra:
            weights = {**base.get("weights", {}), **extra.get("weights", {})}
            base = {**base, **extra}
            if weights:
                base["weights"] = weights
        qty = base.get("quantity_types")
        if isinstance(qty, str):  # one type, or "" for none (a tunable categorical)
            base["quantity_types"] = (qty,) if qty else ()
        config = InteractionConfig.from_dict(base) if base else InteractionConfig()
        # declared event types weigh what the data says unless [features] weights name them
        declared = {
            k: v for k, v in self.event_weights().items() if k not in base.get("weights", {})
        }
        return config.with_weights(**declared) if declared else config


# --- data ----------------------------------------------------------------------------------


@dataclass
class Dataset:
    """Validated events (+ catalog and customer attributes) and where they came from."""

    events: pl.DataFrame
    catalog: pl.DataFrame | None = None
    customers: pl.DataFrame | None = None
    report: dict[str, Any] = field(default_factory=dict)
    data_dir: Path | None = None
    events_path: Path | None = None
    catalog_path: Path | None = None
    customers_path: Path | None = None
    source: dict[str, Any] | None = None
    raw_events: bool = False
    """``events_path`` is the shop's export read in place (``write = false``), not validated
    events: whoever reads it again validates it with ``source``'s options."""
    """The source options used (an ingest folder's source.json), when known."""

    def fingerprint(self) -> str:
        from recsys.tracking import fingerprint_frame

        return fingerprint_frame(self.events)


def rating_strength(events: pl.DataFrame, offset: float) -> pl.DataFrame:
    """Carry explicit ratings into ``quantity`` as ``value - offset`` (rows with a value).

    With ``offset = 3`` a 4-star positive gets quantity 1 and a 5-star one 2; listing the
    positive type in ``features.quantity_types`` then weighs positives by how strong they are.
    """
    has_value = pl.col("value").is_not_null()
    return events.with_columns(
        quantity=pl.when(has_value)
        .then(pl.col("value") - offset)
        .otherwise(pl.col("quantity"))
        .cast(pl.Float64)
    )


def load_dataset(spec: ExperimentSpec, *, write: bool = True) -> Dataset:
    """Generate or read the experiment's data and validate it through ingestion.

    ``synth``: a synthetic shop, ingested; ``path``: a file or folder, ingested with the
    ``[data]`` source options; ``ingest``: an existing ``recsys ingest --out`` folder, read
    as it is (events, catalog, customers, report, source.json; nothing is ingested again).
    Ingested data goes to ``data.dir`` (default ``data/<name>``) unless ``data.write =
    false`` (or ``write=False``): then nothing is written and the source is read in place.
    """
    from features.ingest import CATALOG_FILE, CUSTOMERS_FILE, EVENTS_FILE, ingest, load_catalog
    from features.source_options import SourceOptions, read_source_file

    data = spec.data
    options = spec.source_options()
    if data.get("ingest"):
        dataset = read_ingest_folder(Path(data["ingest"]), spec.name)
    else:
        write = write and bool(data.get("write", True))
        out_dir = Path(data.get("dir", DATA_ROOT / spec.name)) if write else None
        if data.get("synth"):
            from features.synth import SynthConfig, generate, write_shop

            sizes = ("seed", "n_customers", "n_items", "n_events")
            overrides = {k: data[k] for k in sizes if k in data}
            config = SynthConfig.preset(data["synth"], **overrides)
            raw_dir = (out_dir or DATA_ROOT / spec.name) / "raw"
            files = write_shop(generate(config), raw_dir)
            source: Path = files["events"]
            catalog, customers = files.get("catalog"), files.get("customers")
            options = SourceOptions(
                catalog=None if catalog is None else str(catalog),
                customers=None if customers is None else str(customers),
            )
        else:
            assert options is not None
            source = Path(data["path"])
            if not source.exists():
                raise FileNotFoundError(f"{spec.name}: data.path not found: {source}")
        result = ingest(source, options, out_dir=out_dir)
        cat_frame = cust_frame = None
        if out_dir is not None and (out_dir / CATALOG_FILE).exists():
            cat_frame = pl.read_parquet(out_dir / CATALOG_FILE)
        if out_dir is not None and (out_dir / CUSTOMERS_FILE).exists():
            cust_frame = pl.read_parquet(out_dir / CUSTOMERS_FILE)
        if cat_frame is None and options.catalog is not None:
            cat_frame = load_catalog(options.catalog)
        dataset = Dataset(
            events=result.events,
            catalog=cat_frame,
            customers=cust_frame,
            report=result.report.to_dict(),
            data_dir=out_dir if out_dir is not None else source.parent,
            events_path=(out_dir / EVENTS_FILE) if out_dir is not None else source,
            raw_events=out_dir is None,
            catalog_path=(out_dir / CATALOG_FILE)
            if out_dir is not None and cat_frame is not None
            else (Path(options.catalog) if options.catalog else None),
            customers_path=(out_dir / CUSTOMERS_FILE)
            if out_dir is not None and cust_frame is not None
            else None,
            source=read_source_file(out_dir)
            if out_dir is not None
            else {"source": str(source), "options": options.to_dict()},
        )
    if data.get("rating_offset") is not None:
        dataset.events = rating_strength(dataset.events, float(data["rating_offset"]))
    return dataset


def read_ingest_folder(folder: Path, name: str = "experiment") -> Dataset:
    """A ``recsys ingest --out`` folder as a :class:`Dataset`, without ingesting again."""
    from features.ingest import CATALOG_FILE, CUSTOMERS_FILE, EVENTS_FILE, REPORT_FILE
    from features.source_options import read_source_file

    events_path = folder / EVENTS_FILE
    if not events_path.exists():
        raise FileNotFoundError(
            f"{name}: data.ingest {folder} holds no {EVENTS_FILE}: run "
            f"`recsys ingest FILE --out {folder}` first"
        )
    catalog_path, customers_path = folder / CATALOG_FILE, folder / CUSTOMERS_FILE
    report_path = folder / REPORT_FILE
    return Dataset(
        events=pl.read_parquet(events_path),
        catalog=pl.read_parquet(catalog_path) if catalog_path.exists() else None,
        customers=pl.read_parquet(customers_path) if customers_path.exists() else None,
        report=json.loads(report_path.read_text()) if report_path.exists() else {},
        data_dir=folder,
        events_path=events_path,
        catalog_path=catalog_path if catalog_path.exists() else None,
        customers_path=customers_path if customers_path.exists() else None,
        source=read_source_file(folder),
    )


def protocol_data(spec: ExperimentSpec, dataset: Dataset) -> ProtocolData:
    """The protocol's validation and test folds for this experiment's data."""
    data = spec.data
    return ProtocolData.from_events(
        dataset.events,
        spec.protocol(),
        catalog=dataset.catalog if data.get("item_features") else None,
        customer_attrs=dataset.customers if data.get("customer_features") else None,
    )


# --- fitting -------------------------------------------------------------------------------

MatrixSource = Callable[[InteractionConfig], Matrices]
ModelCache = dict[tuple[int, str], "RecommenderBase"]


def fit_model(
    spec: ExperimentSpec,
    matrices: MatrixSource,
    cache: ModelCache | None = None,
    cache_key: int = 0,
    timestamps: Callable[[], sp.csr_matrix] | None = None,
) -> RecommenderBase:
    """Build the spec's model and fit it on ``matrices(feature config)``.

    A blend's components are fitted first, each on its own feature config (the blend's, with
    the component's ``features`` override), and reused from ``cache`` when given (tuning
    blend weights then costs no refit). ``timestamps`` provides the event-time matrix
    (``recsys.models.sequences.event_times``) for models with ``fit_timestamps``.
    """
    from recsys.models import build

    config = spec.interaction_config()
    params = spec.model_params
    if spec.model_name == "blend":
        components = []
        for comp in params.get("models", []):
            comp_config = spec.interaction_config(comp.get("features"))
            key = (cache_key, json.dumps([comp, comp_config.to_dict()], sort_keys=True))
            model = cache.get(key) if cache is not None else None
            if model is None:
                model = build(comp["name"], **comp.get("params", {}))
                fit_matrices(model, matrices(comp_config), timestamps)
                if cache is not None:
                    cache[key] = model
            components.append(model)
        params = {**params, "models": components, "fit_components": False}
    model = build(spec.model_name, **params)
    if spec.model_name == "blend":  # components are fitted: the blend only checks shapes
        return fit_matrices(model, matrices(config), None)
    return fit_matrices(model, matrices(config), timestamps)


def fit_on_fold(
    spec: ExperimentSpec, fold: Fold, cache: ModelCache | None = None
) -> RecommenderBase:
    return fit_model(spec, fold.matrices, cache, cache_key=id(fold), timestamps=fold.timestamps)


def built_matrices(dataset: Dataset) -> Matrices | None:
    """The matrices ``recsys build`` saved in the dataset's folder (``DIR/matrices``), if any."""
    from features.matrices import MATRICES_DIR, has_matrices

    if dataset.data_dir is None or not has_matrices(dataset.data_dir / MATRICES_DIR):
        return None
    return Matrices.load(dataset.data_dir / MATRICES_DIR)


def _same_build(built: Matrices, config: InteractionConfig, item: bool, customer: bool) -> bool:
    """True when ``built`` (from the same events) is what this refit would build: the same
    feature config, and the feature matrices asked for."""
    return (
        built.config.to_dict() == config.to_dict()
        and (not item or built.item_features is not None)
        and (not customer or built.customer_features is not None)
    )


def full_matrices(spec: ExperimentSpec, dataset: Dataset) -> MatrixSource:
    """Matrices over all the data (every customer), for the version publishing serves.

    Id maps: when the data folder holds a ``recsys build`` (``DIR/matrices``), its maps,
    extended with ids it does not know yet (appended, sorted), so a retrain keeps every known
    id's index; else the sorted ids. For the build's own feature config on the same events,
    the built matrices are used as they are; any other config is built on the same maps.
    """
    from features.idmap import IdMap

    data = spec.data
    item, customer = bool(data.get("item_features")), bool(data.get("customer_features"))
    previous = built_matrices(dataset)
    same_events = previous is not None and (
        previous.meta.get("events_fingerprint") == dataset.fingerprint()
    )
    built: dict[str, Matrices] = {}
    # one pair of id maps for every feature config, so blend components share columns
    customer_ids = dataset.events.get_column("customer_id").unique().sort()
    item_ids = dataset.events.get_column("item_id").unique().sort()
    customers = (previous.customers if previous else IdMap([])).extended(customer_ids)
    items = (previous.items if previous else IdMap([])).extended(item_ids)

    def make(config: InteractionConfig) -> Matrices:
        key = json.dumps(config.to_dict(), sort_keys=True, default=str)
        if key in built:
            return built[key]
        if previous is not None and same_events and _same_build(previous, config, item, customer):
            matrices = copy.copy(previous)
            if not item:
                matrices.item_features = matrices.item_feature_names = None
            if not customer:
                matrices.customer_features = matrices.customer_feature_names = None
            matrices.meta = {**previous.meta, "source": "built"}
        else:
            matrices = build_matrices(
                dataset.events,
                config,
                customers=customers,
                items=items,
                extend=False,
                catalog=dataset.catalog if item else None,
                customer_attrs=dataset.customers if customer else None,
            )
            matrices.meta["source"] = "rebuilt on the build's id maps" if previous else "built"
        built[key] = matrices
        return matrices

    return make


def full_timestamps(dataset: Dataset, matrices: Matrices) -> Callable[[], sp.csr_matrix]:
    """Event times of all the data on ``matrices``' id maps (for ``fit_timestamps`` models)."""

    def make() -> sp.csr_matrix:
        from recsys.models.sequences import event_times

        return event_times(dataset.events, matrices.customers, matrices.items)

    return make


# --- train ---------------------------------------------------------------------------------


BASELINE_MODEL = "popularity"
"""The baseline every train and tune is compared with, on the same test split."""
BASELINE_PREFIX = f"baseline_{BASELINE_MODEL}_test_"
"""MLflow metric prefix of the baseline's headline metrics (``..._ndcg`` at the protocol's K)."""
LIFT_METRIC = f"lift_over_{BASELINE_MODEL}"
"""MLflow metric: model test NDCG@K / baseline test NDCG@K (1.0 = as good as popularity)."""


def baseline_spec(spec: ExperimentSpec) -> ExperimentSpec:
    """The experiment with its model replaced by the popularity baseline (default params).

    It keeps the experiment's data, protocol and ``[features]``: the baseline counts the same
    (weighted) interactions the model learns from, so the lift is what the model adds.
    """
    raw = copy.deepcopy(spec.raw)
    raw["model"] = {"name": BASELINE_MODEL, "params": {}}
    raw.pop("tune", None)
    return ExperimentSpec(raw, spec.path)


@dataclass(frozen=True)
class BaselineComparison:
    """The model's test result next to the popularity baseline's, on the same split."""

    baseline: EvaluationResult
    model_ndcg: float

    @property
    def baseline_ndcg(self) -> float:
        return self.baseline.ndcg

    @property
    def lift(self) -> float | None:
        """model NDCG / baseline NDCG; None when the baseline scores 0."""
        return self.model_ndcg / self.baseline_ndcg if self.baseline_ndcg > 0 else None

    @property
    def below(self) -> bool:
        """True when the model ranks worse than popularity (strictly lower NDCG@K)."""
        return self.model_ndcg < self.baseline_ndcg

    def metrics(self) -> dict[str, float]:
        """What the run records: the baseline's headline metrics at K and the lift."""
        out = {f"{BASELINE_PREFIX}{name}": value for name, value in self.baseline.metrics.items()}
        if self.lift is not None:
            out[LIFT_METRIC] = self.lift
        return out


def compare_with_baseline(
    spec: ExperimentSpec, data: ProtocolData, result: EvaluationResult
) -> BaselineComparison:
    """Fit the popularity baseline on the test fold's train and evaluate it like the model."""
    baseline = fit_on_fold(baseline_spec(spec), data.test)
    return BaselineComparison(evaluate(baseline, data.test, data.config), result.ndcg)


@dataclass
class TrainOutcome:
    run_id: str
    version: str | None
    result: EvaluationResult
    model: RecommenderBase
    """The logged model (refitted on all the data when ``refit_all``)."""
    matrices: Matrices | None = None
    validation: EvaluationResult | None = None
    baseline: BaselineComparison | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def log_outcome(
    spec: ExperimentSpec,
    dataset: Dataset,
    data: ProtocolData,
    model: RecommenderBase,
    result: EvaluationResult,
    *,
    baseline: BaselineComparison | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[RecommenderBase, Matrices | None, str | None]:
    """Log spec, data, evaluation and the model into the active run; register it.

    Returns the logged model, its matrices and the registered version (or None).
    """
    import mlflow

    from recsys import tracking
    from recsys.evaluation.plots import log_plots

    settings = spec.mlflow
    config = spec.interaction_config()
    mlflow.log_params(tracking.flatten({"model": spec.raw.get("model", {})}))
    mlflow.log_params(
        tracking.flatten(
            {"features": config.to_dict(), "protocol": spec.protocol().to_dict(), "data": spec.data}
        )
    )
    mlflow.set_tags(
        {
            "model": spec.model_name,
            "experiment_file": str(spec.path or ""),
            "data_fingerprint": dataset.fingerprint(),
            "protocol_fingerprint": tracking.fingerprint_config(spec.protocol().to_dict()),
            "feature_fingerprint": tracking.fingerprint_config(config.to_dict()),
        }
    )
    mlflow.log_dict(spec.raw, "experiment.json")
    mlflow.log_dict(dataset.report, "ingest_report.json")
    mlflow.log_dict(data.report(), "split_report.json")
    tracking.log_evaluation(result, "test_")
    log_plots(result, data.test.item_popularity, "test")
    if baseline is not None:
        mlflow.log_metrics(baseline.metrics())

    if not settings.get("log_model", True):
        return model, None, None
    matrices: Matrices | None
    if settings.get("refit_all", True):
        progress("refitting on all the data")
        source = full_matrices(spec, dataset)
        matrices = source(config)
        model = fit_model(spec, source, timestamps=full_timestamps(dataset, matrices))
    else:
        matrices = data.test.matrices(config)
    bundle = tracking.ModelBundle(
        model=model,
        customers=matrices.customers,
        items=matrices.items,
        matrices=matrices,
        meta={
            "experiment": spec.name,
            "model": spec.model_name,
            "data_dir": str(dataset.data_dir.resolve()) if dataset.data_dir else None,
            "events_path": str(dataset.events_path.resolve()) if dataset.events_path else None,
            "layout": ((dataset.source or {}).get("options") or {}).get("layout")
            or spec.data.get("layout", "canonical"),
            "source_options": (dataset.source or {}).get("options"),
            "events_raw": dataset.raw_events,
            "catalog_path": str(dataset.catalog_path.resolve()) if dataset.catalog_path else None,
            "customers_path": str(dataset.customers_path.resolve())
            if dataset.customers_path
            else None,
            "features": config.to_dict(),
            "refit_all": bool(settings.get("refit_all", True)),
            "matrices": matrices.meta.get("source"),
            "data_fingerprint": dataset.fingerprint(),
            "test_ndcg": result.ndcg,
            "baseline_test_ndcg": baseline.baseline_ndcg if baseline is not None else None,
        },
    )
    progress("saving the model")
    tracking.log_model(bundle)
    version = None
    if settings.get("register", True):
        active = mlflow.active_run()
        assert active is not None
        version = tracking.register(
            active.info.run_id,
            settings.get("model_name", tracking.DEFAULT_MODEL_NAME),
            tags={"experiment": spec.name, "model": spec.model_name},
        )
        mlflow.set_tag("registered_version", version)
    return model, matrices, version


def evaluate_and_log(
    spec: ExperimentSpec,
    dataset: Dataset,
    data: ProtocolData,
    model: RecommenderBase,
    run_id: str,
    *,
    progress: Callable[[str], None] = lambda _: None,
) -> TrainOutcome:
    """Evaluate a model fitted on the test fold's train, once, and the popularity baseline
    on the same split; log and register it (see :func:`log_outcome`) into the active run
    ``run_id``."""
    result = evaluate(model, data.test, data.config)
    progress(f"evaluating the {BASELINE_MODEL} baseline on test")
    baseline = compare_with_baseline(spec, data, result)
    logged, matrices, version = log_outcome(
        spec, dataset, data, model, result, baseline=baseline, progress=progress
    )
    return TrainOutcome(
        run_id=run_id,
        version=version,
        result=result,
        model=logged,
        matrices=matrices,
        baseline=baseline,
    )


def train(
    spec: ExperimentSpec,
    *,
    dataset: Dataset | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> TrainOutcome:
    """Fit the spec's model on the protocol's train split, evaluate test, log and register."""
    from recsys import tracking

    progress("loading data")
    dataset = dataset or load_dataset(spec)
    progress("splitting")
    data = protocol_data(spec, dataset)
    experiment = spec.mlflow.get("experiment", tracking.DEFAULT_EXPERIMENT)
    with tracking.run(spec.name, experiment=experiment, tags={"kind": "train"}) as active:
        progress(f"fitting {spec.model_name}")
        model = fit_on_fold(spec, data.test)
        progress("evaluating on test")
        return evaluate_and_log(spec, dataset, data, model, active.info.run_id, progress=progress)
