"""One connected offline pipeline: ingest -> build -> train, with id maps stable across
retrains. Real CLI commands (in process), real ingest, real MLflow (temporary store)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from features.idmap import IdMap
from features.matrices import Matrices
from features.synth import SynthConfig, generate, write_shop
from recsys import tracking
from recsys.cli import app

EXPERIMENT = """
name = "pipeline-{version}"
[data]
path = "{events}"
catalog = "{catalog}"
source = "shop"
dir = "{data}"
{features}
[model]
name = "itemknn"
params = {{ similarity = "cosine", k = 20 }}
[protocol]
ks = [5, 10]
"""


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def assert_kept(old: pl.Series, new_map: IdMap, old_index: np.ndarray) -> None:
    """Every id of ``old`` is at the same index in ``new_map``."""
    np.testing.assert_array_equal(new_map.index_of(old), old_index)


@pytest.fixture
def exports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Two exports of one shop: the first lacks some customers and items, the second has
    them all but has lost a few customers the first had."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    shop = generate(
        SynthConfig(n_customers=300, n_items=200, n_events=12_000, seed=4, n_top_categories=8)
    )
    customers = shop.events["customer_id"].unique().sort()
    items = shop.events["item_id"].unique().sort()
    late_customers, late_items = customers[-15:], items[-10:]
    gone = customers[:8]
    first = shop.events.filter(
        ~pl.col("customer_id").is_in(late_customers.implode())
        & ~pl.col("item_id").is_in(late_items.implode())
    )
    second = shop.events.filter(~pl.col("customer_id").is_in(gone.implode()))
    paths = {}
    for name, events in (("first", first), ("second", second)):
        files = write_shop(dataclasses.replace(shop, events=events), tmp_path / name)
        paths[name] = files["events"]
    paths["catalog"] = files["catalog"]
    paths["data"] = tmp_path / "data" / "shop"
    paths["root"] = tmp_path
    return paths


def experiment(exports: dict[str, Path], version: str, features: str = "") -> Path:
    path = exports["root"] / f"pipeline-{version}.toml"
    path.write_text(
        EXPERIMENT.format(
            version=version,
            events=exports[version],
            catalog=exports["catalog"],
            data=exports["data"],
            features=features,
        )
    )
    return path


def test_retrain_on_more_data_keeps_every_known_index(exports: dict[str, Path]) -> None:
    data, matrices_dir = exports["data"], exports["data"] / "matrices"
    cli("ingest", str(exports["first"]), "--out", str(data), "--catalog", str(exports["catalog"]))
    cli("build", str(data))
    first = Matrices.load(matrices_dir)
    assert "known_customers" not in first.meta  # a first build numbers from scratch

    # train on the same events with the build's feature config: the built matrices are used
    cli("train", str(experiment(exports, "first")))
    v1 = tracking.load_model_version(version=1)
    assert v1.meta["matrices"] == "built"
    assert v1.customers == first.customers and v1.items == first.items
    assert v1.matrices is not None
    assert (v1.matrices.interactions != first.interactions).nnz == 0

    # the next export: new customers and items, a few customers gone
    cli("ingest", str(exports["second"]), "--out", str(data), "--catalog", str(exports["catalog"]))
    output = cli("build", str(data))
    assert "id maps kept from" in output
    second = Matrices.load(matrices_dir)
    old_customers, old_items = first.customers.series, first.items.series
    customer_index = np.arange(len(first.customers))
    item_index = np.arange(len(first.items))
    assert_kept(old_customers, second.customers, customer_index)
    assert_kept(old_items, second.items, item_index)
    events = pl.read_parquet(data / "events.parquet")
    for name, old, new in (
        ("customers", first.customers, second.customers),
        ("items", first.items, second.items),
    ):
        ids = events[name.removesuffix("s") + "_id"].unique().sort()
        fresh = ids.filter(~ids.is_in(old.series.implode()))
        assert second.meta[f"new_{name}"] == len(fresh) >= (15 if name == "customers" else 10)
        # new ids are appended after the known ones, sorted
        assert new.series[len(old) :].to_list() == fresh.to_list()
    # the customers no longer in the export keep their row, empty
    gone = old_customers.filter(~old_customers.is_in(events["customer_id"].implode()))
    assert len(gone) == 8
    rows = second.customers.index_of(gone)
    assert (np.diff(second.interactions.indptr)[rows] == 0).all()
    assert (np.diff(first.interactions.indptr)[rows] > 0).all()

    # retrain with other feature weights: rebuilt, on the build's maps
    features = "[features]\nweights = { view = 0.2, add_to_cart = 1.0, purchase = 4.0 }"
    cli("train", str(experiment(exports, "second", features)))
    v2 = tracking.load_model_version(version=2)
    assert v2.meta["matrices"] == "rebuilt on the build's id maps"
    assert v2.customers == second.customers and v2.items == second.items
    assert_kept(old_customers, v2.customers, customer_index)
    assert_kept(old_items, v2.items, item_index)


def test_build_fresh_and_previous(exports: dict[str, Path], tmp_path: Path) -> None:
    data = exports["data"]
    cli("ingest", str(exports["second"]), "--out", str(data), "--catalog", str(exports["catalog"]))
    cli("build", str(data), "--out", str(tmp_path / "a"))
    a = Matrices.load(tmp_path / "a")
    cli("build", str(data), "--out", str(tmp_path / "b"), "--previous", str(tmp_path / "a"))
    assert Matrices.load(tmp_path / "b").customers == a.customers
    cli("build", str(data), "--out", str(tmp_path / "a"), "--fresh")
    assert "known_customers" not in Matrices.load(tmp_path / "a").meta
    bad = CliRunner().invoke(app, ["build", str(data), "--previous", str(tmp_path / "none")])
    assert bad.exit_code == 2 and "not a matrices folder" in bad.output
