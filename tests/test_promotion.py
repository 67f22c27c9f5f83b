"""The quality gate: every train evaluates popularity on its split; promote refuses worse models.

Real MLflow (a temporary SQLite store), real models on the synthetic shop, the real CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from recsys import tracking
from recsys.cli import app
from recsys.experiment import BASELINE_PREFIX, LIFT_METRIC, ExperimentSpec, train
from tests.test_tracking import shop_spec as tiny_shop_spec


def shop_spec(tmp: Path, model: dict[str, Any]) -> ExperimentSpec:
    """A small grocery-like shop (features.synth preset), where popularity is a strong baseline."""
    spec = tiny_shop_spec(tmp, model)
    spec.raw["data"].update(synth="grocery", n_customers=1_500, n_events=15_000)
    return spec


BAD_ALS = {"name": "als", "params": {"factors": 300, "iterations": 1, "regularization": 0.0001}}
GOOD = {"name": "itemknn", "params": {"similarity": "cosine", "k": 50}}


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def promote(*args: str) -> Any:
    return CliRunner().invoke(app, ["promote", *args])


def test_train_logs_the_popularity_baseline_and_promote_refuses_worse(
    tmp_path: Path, mlflow_store: str
) -> None:
    bad = train(shop_spec(tmp_path, BAD_ALS))
    assert bad.baseline is not None and bad.baseline.below
    run = tracking.client().get_run(bad.run_id)
    baseline_ndcg = run.data.metrics[f"{BASELINE_PREFIX}ndcg"]
    assert baseline_ndcg == pytest.approx(bad.baseline.baseline_ndcg) and baseline_ndcg > 0
    assert f"{BASELINE_PREFIX}recall" in run.data.metrics
    assert run.data.metrics[LIFT_METRIC] == pytest.approx(bad.result.ndcg / baseline_ndcg)
    assert run.data.metrics[LIFT_METRIC] < 1.0

    refused = promote("--version", bad.version or "")
    assert refused.exit_code == 2, refused.output
    assert "below the popularity baseline" in refused.output
    assert f"{bad.result.ndcg:.4f}" in refused.output and f"{baseline_ndcg:.4f}" in refused.output
    with pytest.raises(LookupError):
        tracking.load_model_version()  # nothing was promoted

    forced = promote("--version", bad.version or "", "--force")
    assert forced.exit_code == 0, forced.output
    assert "recsys@champion -> version 1" in forced.output
    assert tracking.load_model_version().version == "1"


def test_promote_accepts_a_good_model_and_refuses_one_below_the_champion(
    tmp_path: Path, mlflow_store: str
) -> None:
    good = train(tiny_shop_spec(tmp_path, GOOD))  # personal tastes: item-KNN beats popularity
    assert good.baseline is not None and not good.baseline.below
    accepted = promote()  # the latest version
    assert accepted.exit_code == 0, accepted.output
    assert "refused" not in accepted.output
    assert tracking.load_model_version().version == "1"

    # popularity itself is not below its baseline, but it is below the champion (same data)
    popular = train(tiny_shop_spec(tmp_path, {"name": "popularity"}))
    assert popular.baseline is not None and not popular.baseline.below
    assert popular.result.ndcg < good.result.ndcg
    below_champion = promote("--version", "2")
    assert below_champion.exit_code == 2, below_champion.output
    assert "below the current champion (version 1" in below_champion.output
    assert f"{good.result.ndcg:.4f}" in below_champion.output
    assert tracking.load_model_version().version == "1"

    # on another shop (another data fingerprint) the champion cannot be compared: allowed
    other = tiny_shop_spec(tmp_path / "other", {"name": "popularity"})
    other.raw["data"]["seed"] = 5
    third = train(other)
    result = promote("--version", third.version or "")
    assert result.exit_code == 0, result.output
    assert "comparing them is not possible" in result.output
    assert tracking.load_model_version().version == "3"
