"""CLI smoke tests: recsys ingest / build (and synth) through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from recsys.cli import app

FIXTURES = Path(__file__).resolve().parent / "fixtures"
runner = CliRunner()


def test_ingest_then_build(tmp_path: Path) -> None:
    out = tmp_path / "data"
    result = runner.invoke(
        app,
        [
            "ingest",
            str(FIXTURES / "canonical_events.csv"),
            "--catalog",
            str(FIXTURES / "canonical_catalog.csv"),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "rows in" in result.output and "accounted" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["accounted"] is True

    result = runner.invoke(app, ["build", str(out), "-w", "purchase=10", "--half-life-days", "30"])
    assert result.exit_code == 0, result.output
    assert "non-zeros" in result.output
    meta = json.loads((out / "matrices" / "meta.json").read_text())
    assert meta["config"]["weights"]["purchase"] == 10.0
    assert meta["config"]["half_life_days"] == 30.0
    assert meta["customers"] == pl.read_parquet(out / "events.parquet")["customer_id"].n_unique()
    assert (out / "matrices" / "item_features.npz").exists()  # catalog.parquet was used


def test_ingest_layout_mapping_and_json(tmp_path: Path) -> None:
    out = tmp_path / "rr"
    result = runner.invoke(
        app,
        [
            "ingest",
            str(FIXTURES / "retailrocket_events.csv"),
            "--mapping",
            "visitorid=customer_id",
            "-m",
            "itemid=item_id",
            "-m",
            "event=event_type",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    # canonical layout with a mapping: RetailRocket's event names are unknown here
    report = json.loads((out / "report.json").read_text())
    assert report["by_reason"]["unknown_event_type"] >= 3

    result = runner.invoke(
        app,
        [
            "ingest",
            str(FIXTURES / "movielens" / "ratings.csv"),
            "--layout",
            "movielens",
            "--rating-threshold",
            "5",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "report.json").read_text())["by_event_type"]["rating_pos"] == 1


def test_clear_errors(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", str(tmp_path / "missing.csv"), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "no such file" in result.output
    result = runner.invoke(
        app, ["ingest", str(FIXTURES / "retailrocket_events.csv"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "mapping" in result.output
    result = runner.invoke(app, ["ingest", "x.csv", "--layout", "shopify", "--out", "o"])
    assert result.exit_code == 2 and "unknown layout" in result.output
    result = runner.invoke(app, ["build", str(tmp_path)])
    assert result.exit_code == 2 and "events.parquet" in result.output


def test_synth_ingest_build_retailrocket(tmp_path: Path) -> None:
    shop = tmp_path / "shop"
    result = runner.invoke(
        app, ["synth", "--size", "tiny", "--layout", "retailrocket", "--out", str(shop)]
    )
    assert result.exit_code == 0, result.output
    assert (shop / "events.csv").exists() and (shop / "catalog.csv").exists()
    data = tmp_path / "data"
    result = runner.invoke(
        app,
        [
            "ingest",
            str(shop / "events.csv"),
            "--layout",
            "retailrocket",
            "--catalog",
            str(shop / "catalog.csv"),
            "--out",
            str(data),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((data / "report.json").read_text())
    manifest = json.loads((shop / "manifest.json").read_text())
    assert report["kept"] == manifest["expected"]["kept"]
    result = runner.invoke(app, ["build", str(data), "--min-item-support", "2"])
    assert result.exit_code == 0, result.output
    meta = json.loads((data / "matrices" / "meta.json").read_text())
    assert meta["nnz"] > 0 and meta["config"]["min_item_support"] == 2
    result = runner.invoke(app, ["synth", "--size", "huge", "--out", str(shop)])
    assert result.exit_code == 2 and "unknown size" in result.output
