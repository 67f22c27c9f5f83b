"""ingest(): layouts + validation + files written; catalog and customers loading."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from features.ingest import ingest, load_catalog, load_customers
from features.schema import CATALOG_SCHEMA, EVENT_SCHEMA
from features.sources import SourceError
from features.validate import ValidationConfig

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_ingest_writes_events_quarantine_and_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    stages: list[str] = []
    result = ingest(
        FIXTURES / "canonical_events.csv",
        catalog=FIXTURES / "canonical_catalog.csv",
        config=ValidationConfig(now=NOW),
        out_dir=out,
        progress=stages.append,
    )
    assert stages == ["read", "validate", "write"]
    events = pl.read_parquet(out / "events.parquet")
    quarantine = pl.read_parquet(out / "quarantine.parquet")
    report = json.loads((out / "report.json").read_text())
    assert events.schema == pl.Schema(EVENT_SCHEMA)
    assert events.equals(result.events)
    assert quarantine.height == report["quarantined"] == result.report.quarantined
    assert report["rows_in"] == report["kept"] + report["quarantined"] + report["duplicates"]
    assert report["accounted"] is True and report["layout"] == "canonical"
    assert report["by_reason"]["unknown_item"] == 1  # i4 is not in the catalog
    assert "read" in report["timings"] and "write" in report["timings"]
    catalog = pl.read_parquet(out / "catalog.parquet")
    assert catalog["item_id"].to_list() == ["i1", "i2", "i3"]


def test_mapping_makes_any_export_fit(tmp_path: Path) -> None:
    path = tmp_path / "shop.csv"
    path.write_text(
        "user,sku,action,when,qty\n"
        "u1,A-1,purchase,2024-05-01T10:00:00Z,2\n"
        "u2,B-2,view,2024-05-01T11:00:00Z,\n"
    )
    mapping = {"user": "customer_id", "sku": "item_id", "action": "event_type"}
    mapping |= {"when": "timestamp", "qty": "quantity"}
    result = ingest(path, mapping=mapping)
    assert result.events.select("customer_id", "item_id", "quantity").rows() == [
        ("u1", "A-1", 2.0),
        ("u2", "B-2", 1.0),
    ]


def test_load_catalog_types_and_attributes() -> None:
    catalog = load_catalog(FIXTURES / "canonical_catalog.csv")
    assert dict(catalog.schema) == {**CATALOG_SCHEMA, "brand": pl.String()}
    first = catalog.row(0, named=True)
    assert first["category"] == "Home > Kitchen > Mugs"
    assert first["in_stock"] is True and first["price"] == pytest.approx(19.99)
    tea = catalog.filter(pl.col("item_id") == "i3").row(0, named=True)
    assert tea["title"] == "Tea (new)"  # the later row of a repeated id wins
    assert tea["created_at"] == datetime(2023, 1, 1, tzinfo=UTC)  # epoch seconds


def test_load_customers(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text("id,country,segment\nc1,FR,vip\nc2,DE,\nc1,FR,gold\n,XX,\n")
    customers = load_customers(path, mapping={"id": "customer_id"})
    assert sorted(customers.rows()) == [("c1", "FR", "gold"), ("c2", "DE", None)]
    with pytest.raises(SourceError, match="customer_id"):
        load_customers(path)


@pytest.mark.parametrize("layout", ["canonical", "retailrocket"])
def test_synthetic_dirty_shop_every_row_accounted(tmp_path: Path, layout: str) -> None:
    from features.synth import SynthConfig, generate, write_shop

    shop = generate(SynthConfig.preset("tiny", seed=3))
    paths = write_shop(shop, tmp_path, layout=layout)  # type: ignore[arg-type]
    expected = json.loads(paths["manifest"].read_text())["expected"]
    result = ingest(paths["events"], layout=layout, catalog=paths["catalog"], out_dir=tmp_path)
    report = result.report
    assert 0.015 < (report.duplicates + report.quarantined) / report.rows_in < 0.025  # ~2%
    assert report.rows_in == expected["rows_in"]
    assert report.kept == expected["kept"]
    assert report.duplicates == expected["duplicates"]
    assert report.quarantined == expected["quarantined"]
    assert report.by_reason == expected["by_reason"]
    quarantine = pl.read_parquet(tmp_path / "quarantine.parquet")
    assert quarantine["reason"].null_count() == 0
    assert quarantine["row"].n_unique() == quarantine.height
    # every quarantined row is the file's row at that position, unchanged
    raw = pl.read_csv(paths["events"], infer_schema=False)
    originals = raw.with_row_index("row").join(
        quarantine.select("row"), on="row", how="semi", maintain_order="left"
    )
    raw_columns = list(raw.columns)
    if layout == "retailrocket":
        renamed = {"visitorid": "customer_id", "event": "event_type", "itemid": "item_id"}
        renamed["transactionid"] = "session_id"
        raw_columns = [renamed.get(c, c) for c in raw.columns]
        originals = originals.rename(renamed)
    assert (
        quarantine.sort("row")
        .select("row", *raw_columns)
        .equals(originals.select("row", *raw_columns).cast({"row": pl.UInt32}))
    )
