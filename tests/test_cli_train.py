"""CLI smoke: recsys train / tune / runs / promote on a tiny synthetic shop, real MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from recsys import tracking
from recsys.cli import app

EXPERIMENT = """
name = "itemknn-tiny"
[data]
synth = "tiny"
n_customers = 200
n_items = 200
n_events = 10000
source = "shop"
dir = "{data}"
[features]
weights = {{ view = 0.5, add_to_cart = 1.0, purchase = 3.0 }}
[model]
name = "itemknn"
params = {{ similarity = "cosine", k = 20 }}
[protocol]
ks = [5, 10]
[tune]
trials = 2
[tune.space]
"model.params.k" = {{ type = "int", low = 5, high = 50 }}
"features.weights.view" = {{ type = "float", low = 0.0, high = 1.0 }}
"""


@pytest.fixture
def experiment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    path = tmp_path / "itemknn-tiny.toml"
    path.write_text(EXPERIMENT.format(data=tmp_path / "data"))
    return path


def test_train_tune_runs_promote(experiment: Path) -> None:
    runner = CliRunner()
    trained = runner.invoke(app, ["train", str(experiment)])
    assert trained.exit_code == 0, trained.output
    assert "test ndcg@10" in trained.output and "registered version 1" in trained.output
    assert "popularity baseline ndcg@10" in trained.output and "lift" in trained.output

    tuned = runner.invoke(app, ["tune", str(experiment), "--trials", "2"])
    assert tuned.exit_code == 0, tuned.output
    assert "best on validation (2 trials)" in tuned.output
    assert "popularity baseline ndcg@10" in tuned.output

    runs = tracking.list_runs()
    assert [r.data.tags["kind"] for r in runs] == ["tune", "train"]  # trials are nested
    tune_run = runs[0]
    children = tracking.client().search_runs(
        [tune_run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{tune_run.info.run_id}'",
    )
    assert len(children) == 2
    assert all("validation_ndcg_at_10" in c.data.metrics for c in children)

    listed = runner.invoke(app, ["runs"])
    assert listed.exit_code == 0 and "itemknn-tiny-tune" in listed.output
    assert "lift" in listed.output and "x " in listed.output  # lift over popularity, e.g. 2.31x

    promoted = runner.invoke(app, ["promote", "--version", "1"])
    assert promoted.exit_code == 0 and "recsys@champion -> version 1" in promoted.output
    assert tracking.load_model_version().run_id == runs[1].info.run_id
    missing = runner.invoke(app, ["promote", "--version", "9"])
    assert missing.exit_code == 1


def test_bad_experiment_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[data]\nsynth = "tiny"\n[model]\nname = "nope"\n')
    result = CliRunner().invoke(app, ["train", str(bad)])
    assert result.exit_code != 0
    assert "unknown model 'nope'" in result.output
    missing = CliRunner().invoke(app, ["train", str(tmp_path / "missing.toml")])
    assert missing.exit_code != 0 and "not found" in missing.output
