"""A real MLflow round trip: train -> registry -> promote -> load the champion -> same output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recsys import tracking
from recsys.experiment import ExperimentSpec, train


def shop_spec(tmp: Path, model: dict[str, Any], **extra: Any) -> ExperimentSpec:
    return ExperimentSpec.from_dict(
        {
            "name": "tiny-shop",
            "data": {
                "synth": "tiny",
                "n_customers": 200,
                "n_items": 200,
                "n_events": 10_000,
                "source": "shop",
                "dir": str(tmp / "data"),
            },
            "features": {
                "weights": {"view": 0.5, "add_to_cart": 1.0, "purchase": 3.0},
                "confidence": "log1p",
            },
            "model": model,
            "protocol": {"ks": [5, 10]},
            **extra,
        }
    )


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def test_train_register_promote_load_same_recommendations(
    tmp_path: Path, mlflow_store: str
) -> None:
    spec = shop_spec(tmp_path, {"name": "als", "params": {"factors": 8, "iterations": 3}})
    outcome = train(spec)
    assert outcome.version == "1"
    assert 0.0 <= outcome.result.ndcg <= 1.0

    assert tracking.promote() == "1"  # latest version by default
    loaded = tracking.load_model_version()  # name="recsys", alias="champion"
    assert (loaded.version, loaded.run_id) == ("1", outcome.run_id)
    assert outcome.matrices is not None and loaded.matrices is not None
    assert loaded.customers == outcome.matrices.customers
    assert loaded.items == outcome.matrices.items
    # the version was refitted on all the data: every customer of the shop has a row
    assert len(loaded.customers) > outcome.result.n_customers
    assert loaded.data_dir == (tmp_path / "data").resolve()
    assert loaded.catalog_path is not None and loaded.catalog_path.exists()
    assert loaded.events_path is not None and loaded.events_path.exists()

    rows = np.arange(min(50, len(loaded.customers)))
    history = loaded.matrices.interactions[rows]
    expected = outcome.model.recommend(rows, 10, exclude=history)
    got = loaded.model.recommend(rows, 10, exclude=history)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-6)

    # what the run recorded
    run = tracking.client().get_run(outcome.run_id)
    assert run.data.metrics["test_ndcg_at_10"] == pytest.approx(outcome.result.ndcg)
    assert "test_recall_at_5" in run.data.metrics
    assert run.data.tags["data_fingerprint"] and run.data.tags["git_commit"]
    assert run.data.params["model.name"] == "als"
    artifacts = {a.path for a in tracking.client().list_artifacts(outcome.run_id)}
    assert {"model", "plots", "ingest_report.json", "split_report.json"} <= artifacts


def test_second_version_and_explicit_promotion(tmp_path: Path, mlflow_store: str) -> None:
    spec = shop_spec(  # a model fitted with event times (fit_timestamps), on the train split
        tmp_path,
        {"name": "session_ease", "params": {"l2": 10.0}},
        mlflow={"refit_all": False, "model_name": "shop"},
    )
    first = train(spec)
    second = train(spec)
    assert (first.version, second.version) == ("1", "2")
    tracking.promote("shop", version="1")
    loaded = tracking.load_model_version("shop")
    assert loaded.version == "1" and loaded.meta["refit_all"] is False
    rows = np.arange(20)
    assert loaded.matrices is not None
    history = loaded.matrices.interactions[rows]
    np.testing.assert_array_equal(
        loaded.model.recommend(rows, 5, exclude=history)[0],
        first.model.recommend(rows, 5, exclude=history)[0],
    )
    assert tracking.load_model_version("shop", version=2).run_id == second.run_id
    with pytest.raises(LookupError, match="no"):
        tracking.load_model_version("shop", alias="nobody")
    with pytest.raises(LookupError):
        tracking.promote("unknown-model")


def test_default_store_is_sqlite_under_mlruns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri() == "sqlite:///mlruns/mlflow.db"
    root = tracking.artifact_root(tracking.tracking_uri())
    assert root is not None and root.endswith("/mlruns/artifacts")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert tracking.tracking_uri() == "http://mlflow.example:5000"
    assert tracking.artifact_root(tracking.tracking_uri()) is None
