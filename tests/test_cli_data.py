"""CLI smoke tests: recsys ingest / build (and synth) through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from click.testing import Result
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


# --- source options ------------------------------------------------------------------------

SHOPS = FIXTURES / "shops"
GROCERY_FLAGS = [
    "--mapping",
    "Member_number=customer_id",
    "--mapping",
    "Date=timestamp",
    "--mapping",
    "itemDescription=item_id",
    "--set",
    "event_type=purchase",
]


def test_ingest_grocery_orders_with_a_constant_event_type(tmp_path: Path) -> None:
    out = tmp_path / "grocery"
    args = ["ingest", str(SHOPS / "grocery_orders.csv"), *GROCERY_FLAGS, "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "day-first" in result.output and "event_type=purchase" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["accounted"] and report["rows_in"] == 634
    assert "unparseable_timestamp" not in report["by_reason"]
    assert "missing_event_type" not in report["by_reason"]
    assert report["timestamps"]["order"] == "day-first"
    source = json.loads((out / "source.json").read_text())
    assert source["options"]["mapping"]["Date"] == "timestamp"


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    before = sorted(SHOPS.iterdir())
    result = runner.invoke(
        app, ["ingest", str(SHOPS / "grocery_orders.csv"), *GROCERY_FLAGS, "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "first 10 rows as read" in result.output and "quarantine by reason" in result.output
    assert "missing_item_id" in result.output and "dates: day-first" in result.output
    assert "nothing written" in result.output
    assert sorted(SHOPS.iterdir()) == before
    out = tmp_path / "not-written"
    args = [
        "ingest",
        str(SHOPS / "grocery_orders.csv"),
        *GROCERY_FLAGS,
        "--dry-run",
        "-o",
        str(out),
    ]
    assert runner.invoke(app, args).exit_code == 0
    assert not out.exists()


def test_declared_event_types_reach_build(tmp_path: Path) -> None:
    events = tmp_path / "events.csv"
    events.write_text(
        "customer_id,item_id,action,timestamp\n"
        "c1,i1,wish,2024-01-01T00:00:00Z\n"
        "c1,i2,transaction,2024-01-02T00:00:00Z\n"
        "c2,i1,view,2024-01-03T00:00:00Z\n"
    )
    out = tmp_path / "shop"
    flags = ["--mapping", "action=event_type", "--event-type", "wishlist=2.5"]
    flags += ["--event-alias", "wish=wishlist", "--event-alias", "transaction=purchase"]
    result = runner.invoke(app, ["ingest", str(events), *flags, "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["by_event_type"] == {"purchase": 1, "view": 1, "wishlist": 1}
    assert json.loads((out / "source.json").read_text())["options"]["event_types"] == {
        "wishlist": 2.5
    }
    result = runner.invoke(app, ["build", str(out)])
    assert result.exit_code == 0, result.output
    weights = json.loads((out / "matrices" / "meta.json").read_text())["config"]["weights"]
    assert weights["wishlist"] == 2.5 and weights["purchase"] == 5.0
    result = runner.invoke(app, ["build", str(out), "-w", "wishlist=7"])  # --weight overrides
    assert result.exit_code == 0, result.output
    weights = json.loads((out / "matrices" / "meta.json").read_text())["config"]["weights"]
    assert weights["wishlist"] == 7.0


def flat(result: Result) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def test_source_option_errors_exit_2(tmp_path: Path) -> None:
    ambiguous = tmp_path / "ambiguous.csv"
    ambiguous.write_text("customer_id,item_id,timestamp\nc1,i1,01-02-2015\nc2,i2,03-04-2015\n")
    base = ["ingest", str(ambiguous), "--set", "event_type=purchase"]
    result = runner.invoke(app, [*base, "--dry-run"])
    assert result.exit_code == 2 and "read both ways" in flat(result)
    assert "01-02-2015" in flat(result) and "--timestamp-format" in flat(result)
    out = tmp_path / "fixed"
    result = runner.invoke(app, [*base, "--timestamp-format", "%d-%m-%Y", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "report.json").read_text())["first_event"].startswith("2015-02-01")
    result = runner.invoke(app, [*base, "--dry-run", "--timezone", "Europe/Londn"])
    assert result.exit_code == 2 and "unknown time zone" in flat(result)
    result = runner.invoke(app, [*base, "--dry-run", "--set", "colour=red"])
    assert result.exit_code == 2 and "not event columns" in flat(result)
    result = runner.invoke(app, [*base, "--dry-run", "--event-alias", "wish"])
    assert result.exit_code == 2 and "--event-alias 'wish'" in flat(result)
    result = runner.invoke(app, base)
    assert result.exit_code == 2 and "--out" in flat(result)
