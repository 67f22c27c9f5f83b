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
