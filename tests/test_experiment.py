"""Experiment specs: parsing, dotted overrides, feature config, search-space checks."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from recsys.experiment import ExperimentSpec, get_path, rating_strength, set_path
from recsys.tuning import check_space, start_point

REPO = Path(__file__).resolve().parent.parent
BASE = {
    "name": "x",
    "data": {"synth": "tiny"},
    "features": {"weights": {"view": 0.5, "purchase": 3.0}},
    "model": {
        "name": "blend",
        "params": {"models": [{"name": "ease", "params": {"l2": 10.0}}], "weights": [1.0]},
    },
}


def test_dotted_paths_and_overrides_do_not_touch_the_original() -> None:
    spec = ExperimentSpec.from_dict(BASE)
    tuned = spec.with_overrides(
        {
            "model.params.weights.0": 0.3,
            "features.weights.view": 0.0,
            "model.params.models.0.params.l2": 5.0,
        }
    )
    assert get_path(tuned.raw, "model.params.weights.0") == 0.3
    assert tuned.interaction_config().weights == {"view": 0.0, "purchase": 3.0}
    assert tuned.model_params["models"][0]["params"]["l2"] == 5.0
    assert (
        spec.model_params["weights"] == [1.0] and spec.interaction_config().weights["view"] == 0.5
    )
    tree: dict = {}
    set_path(tree, "a.b.c", 1)
    assert tree == {"a": {"b": {"c": 1}}} and get_path(tree, "a.x", "d") == "d"


def test_feature_overrides_and_quantity_types() -> None:
    spec = ExperimentSpec.from_dict(BASE)
    comp = spec.interaction_config({"weights": {"view": 0.1}, "quantity_types": "purchase"})
    assert comp.weights == {"view": 0.1, "purchase": 3.0}
    assert comp.quantity_types == ("purchase",)
    assert spec.interaction_config({"quantity_types": ""}).quantity_types == ()


def test_rating_strength_moves_ratings_into_quantity() -> None:
    events = pl.DataFrame(
        {"value": [4.0, 5.0, None], "quantity": [None, None, 2.0]},
        schema={"value": pl.Float64, "quantity": pl.Float64},
    )
    assert rating_strength(events, 3.0)["quantity"].to_list() == [1.0, 2.0, 2.0]


def test_bad_specs_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="needs `synth"):
        ExperimentSpec.from_dict({**BASE, "data": {}})
    with pytest.raises(ValueError, match="unknown model"):
        ExperimentSpec.from_dict({**BASE, "model": {"name": "svd"}})
    with pytest.raises(ValueError, match="low <= high"):
        check_space({"model.params.k": {"type": "int", "low": 5, "high": 1}})
    with pytest.raises(ValueError, match="log scale"):
        check_space({"model.params.k": {"type": "float", "low": 0, "high": 1, "log": True}})
    with pytest.raises(ValueError, match="type must be"):
        check_space({"model.params.k": {"type": "normal"}})


def test_start_point_is_the_spec_when_inside_the_space() -> None:
    spec = ExperimentSpec.from_dict(BASE)
    space = {"features.weights.view": {"type": "float", "low": 0.0, "high": 1.0}}
    assert start_point(spec, space) == {"features.weights.view": 0.5}
    space = {"features.weights.view": {"type": "float", "low": 0.6, "high": 1.0}}
    assert start_point(spec, space) is None


def test_every_shipped_experiment_file_parses() -> None:
    files = sorted((REPO / "experiments").glob("*.toml"))
    names = {p.stem for p in files}
    for family in ("popularity", "itemknn", "als", "bpr", "lightfm", "ease", "blend"):
        assert {f"shop-{family}", f"ml-{family}"} <= names
    for path in files:
        spec = ExperimentSpec.load(path)
        check_space(spec.tune.get("space", {}))


# --- [data]: source options and ingest folders ---------------------------------------------

ORDERS = (
    "member,date,product,qty\n"
    "m1,21-07-2015,milk,2\n"
    "m1,22-07-2015,bread,1\n"
    "m2,03-08-2015,milk,1\n"
    "m2,03-08-2015,jam,x\n"  # unparseable quantity: quarantined
)
ORDER_OPTIONS = {
    "mapping": {"member": "customer_id", "date": "timestamp", "product": "item_id"}
    | {"qty": "quantity"},
    "set": {"event_type": "purchase"},
    "timezone": "Europe/London",
}


def spec_with(data: dict) -> ExperimentSpec:
    return ExperimentSpec.from_dict({**BASE, "data": data})


def test_data_path_takes_the_ingest_source_options(tmp_path: Path) -> None:
    from recsys.experiment import load_dataset

    (tmp_path / "orders.csv").write_text(ORDERS)
    out = tmp_path / "data"
    spec = spec_with({"path": str(tmp_path / "orders.csv"), "dir": str(out), **ORDER_OPTIONS})
    dataset = load_dataset(spec)
    assert dataset.report["kept"] == 3 and dataset.report["by_reason"] == {
        "unparseable_quantity": 1
    }
    assert dataset.report["timestamps"]["order"] == "day-first"
    # 21 July 2015 00:00 in London (BST) is 20 July 23:00 UTC
    assert str(dataset.events["timestamp"].min()) == "2015-07-20 23:00:00+00:00"
    assert dataset.source is not None and dataset.source["options"]["set"] == {
        "event_type": "purchase"
    }
    assert (out / "source.json").exists() and dataset.events_path == out / "events.parquet"


def test_data_ingest_reads_an_ingest_folder_as_it_is(tmp_path: Path) -> None:
    from features.ingest import ingest
    from features.source_options import SourceOptions
    from recsys.experiment import load_dataset

    (tmp_path / "orders.csv").write_text(ORDERS)
    folder = tmp_path / "shop"
    options = SourceOptions.from_dict({**ORDER_OPTIONS, "event_types": {"wishlist": 2.5}})
    ingest(tmp_path / "orders.csv", options, out_dir=folder)
    (tmp_path / "orders.csv").unlink()  # nothing is read from the raw file again
    written = sorted(p.name for p in folder.iterdir())

    spec = spec_with({"ingest": str(folder), "rating_offset": 1.0})
    dataset = load_dataset(spec)
    assert sorted(p.name for p in folder.iterdir()) == written  # nothing written either
    assert dataset.events.drop("quantity").equals(
        pl.read_parquet(folder / "events.parquet").drop("quantity")
    )
    assert dataset.report["kept"] == 3 and dataset.data_dir == folder
    assert dataset.source is not None and dataset.source["options"]["timezone"] == "Europe/London"
    # the weight declared at ingest reaches training unless [features] names the type
    assert spec.interaction_config().weights["wishlist"] == 2.5
    named = ExperimentSpec.from_dict(
        {**BASE, "data": {"ingest": str(folder)}, "features": {"weights": {"wishlist": 1.0}}}
    )
    assert named.interaction_config().weights == {"wishlist": 1.0}
    with pytest.raises(FileNotFoundError, match="holds no events.parquet"):
        load_dataset(spec_with({"ingest": str(tmp_path / "nowhere")}))


def test_data_event_types_weigh_in_the_feature_config() -> None:
    spec = spec_with({"path": "orders.csv", "event_types": {"wishlist": 2.5}})
    assert spec.interaction_config().weights == {"view": 0.5, "purchase": 3.0, "wishlist": 2.5}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"path": "x.csv", "timezon": "UTC"}, r"unknown \[data\] key\(s\) \['timezon'\]"),
        ({"synth": "tiny", "mapping": {"a": "customer_id"}}, "synth takes no source options"),
        ({"ingest": "data/shop", "timezone": "UTC"}, "ingest takes no source options"),
        ({"path": "x.csv", "ingest": "data/shop"}, "exactly one"),
        ({"path": "x.csv", "timezone": "Europe/Londn"}, r"x: \[data\] unknown time zone"),
        ({"path": "x.csv", "set": {"event_type": 1}}, "non-empty strings"),
    ],
)
def test_bad_data_sections_are_clear_errors(data: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spec_with(data)


def test_train_on_an_ingest_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """recsys ingest -> an experiment file pointing at its folder -> train (real MLflow)."""
    from typer.testing import CliRunner

    from features.synth import SynthConfig, generate, write_shop
    from recsys.cli import app

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)  # load_dataset would ingest into ./data/<name>
    config = SynthConfig.preset("tiny", n_customers=200, n_items=200, n_events=8000)
    files = write_shop(generate(config), tmp_path / "raw")
    folder = tmp_path / "shop"
    runner = CliRunner()
    ingested = runner.invoke(
        app,
        ["ingest", str(files["events"]), "--catalog", str(files["catalog"]), "-o", str(folder)],
    )
    assert ingested.exit_code == 0, ingested.output
    experiment = tmp_path / "from-folder.toml"
    experiment.write_text(
        f'name = "from-folder"\n[data]\ningest = "{folder}"\nsource = "shop"\n'
        '[model]\nname = "popularity"\n[mlflow]\nregister = false\n'
    )
    trained = runner.invoke(app, ["train", str(experiment)])
    assert trained.exit_code == 0, trained.output
    assert "test ndcg@10" in trained.output
    assert not (Path("data") / "from-folder").exists()  # nothing ingested again
