"""ingest(): layouts + validation + files written; catalog and customers loading."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from features.ingest import dry_run, ingest, load_catalog, load_customers
from features.schema import CATALOG_SCHEMA, EVENT_SCHEMA
from features.source_options import SourceOptions
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


# --- source options on the three real-world-shaped exports (tests/fixtures/shops) ----------

SHOPS = FIXTURES / "shops"


def _stdlib_rows(path: Path) -> list[dict[str, str]]:
    """The file as Python's csv module reads it: an independent count of its rows."""
    import csv

    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_grocery_orders_day_first_and_a_constant_event_type(tmp_path: Path) -> None:
    options = SourceOptions.from_cli(
        mapping=["Member_number=customer_id", "Date=timestamp", "itemDescription=item_id"],
        constants=["event_type=purchase"],
    )
    result = ingest(SHOPS / "grocery_orders.csv", options, out_dir=tmp_path)
    report = result.report
    rows = _stdlib_rows(SHOPS / "grocery_orders.csv")
    assert report.rows_in == len(rows) == 634 and report.accounted
    assert report.timestamps["order"] == "day-first"
    # no row is lost to its date or its event type: only ids decide
    assert report.by_reason.pop("missing_customer_id") == 1
    assert report.by_reason.pop("missing_item_id") == 1
    # ids with spaces, parentheses, slashes, quotes and non-ASCII are kept as written
    assert report.kept == 632 and not report.by_reason
    # every kept row is the file's row, its date read day-first (stdlib strptime)
    expected = sorted(
        (r["Member_number"], r["itemDescription"], datetime.strptime(r["Date"], "%d-%m-%Y"))
        for r in rows
        if r["Member_number"] and r["itemDescription"]
    )
    kept = sorted(
        (c, i, t.replace(tzinfo=None))
        for c, i, t in result.events.select("customer_id", "item_id", "timestamp").rows()
    )
    assert set(kept) == set(expected)
    assert result.events["event_type"].unique().to_list() == ["purchase"]
    recorded = json.loads((tmp_path / "source.json").read_text())
    assert recorded["options"]["set"] == {"event_type": "purchase"}
    assert json.loads((tmp_path / "report.json").read_text())["options"] == options.to_dict()


def test_clickstream_aliases_epoch_ms_and_an_extra_event_type(tmp_path: Path) -> None:
    mapping = ["event_time=timestamp", "session=session_id", "visitor=customer_id"]
    mapping += ["product=item_id", "action=event_type"]
    aliases = ["addtocart=add_to_cart", "transaction=purchase"]
    options = SourceOptions.from_cli(
        mapping=mapping, event_aliases=aliases, event_types=["wishlist_add=2.0"]
    )
    result = ingest(SHOPS / "clickstream.csv", options, out_dir=tmp_path)
    report = result.report
    rows = _stdlib_rows(SHOPS / "clickstream.csv")
    assert report.rows_in == len(rows) == 712 and report.accounted
    assert report.by_reason == {"unparseable_timestamp": 1}  # "not-a-time"
    assert report.kept == 711 and report.by_event_type["wishlist_add"] == 1
    names = {"addtocart": "add_to_cart", "transaction": "purchase"}
    counted: dict[str, int] = {}
    for row in rows:
        if row["event_time"] != "not-a-time":
            name = names.get(row["action"], row["action"])
            counted[name] = counted.get(name, 0) + 1
    assert report.by_event_type == counted
    assert set(report.by_event_type) <= {"view", "add_to_cart", "purchase", "wishlist_add"}
    by_key = {
        (r["visitor"], r["product"], int(r["event_time"])): r
        for r in rows
        if r["event_time"].isdigit()
    }
    for event in result.events.iter_rows(named=True):
        millis = int(event["timestamp"].timestamp() * 1000)
        source = by_key[(event["customer_id"], event["item_id"], millis)]
        assert event["event_type"] == names.get(source["action"], source["action"])
        assert event["session_id"] == source["session"]
        assert event["price"] == (float(source["price"]) if source["price"] else None)
    priced = result.events.filter(pl.col("event_type") == "purchase")["price"]
    assert priced.null_count() == 0 and priced.min() > 0  # type: ignore[operator]
    assert json.loads((tmp_path / "source.json").read_text())["options"]["event_types"] == {
        "wishlist_add": 2.0
    }
    # undeclared, the unknown action is quarantined, not dropped
    plain = SourceOptions.from_cli(mapping=mapping, event_aliases=aliases)
    undeclared = ingest(SHOPS / "clickstream.csv", plain).report
    assert undeclared.by_reason["unknown_event_type"] == 1 and undeclared.accounted


def test_invoices_in_london_time(tmp_path: Path) -> None:
    london = SourceOptions(layout="uci_online_retail", timezone="Europe/London")
    result = ingest(SHOPS / "invoices.csv", london)
    naive = ingest(SHOPS / "invoices.csv", SourceOptions(layout="uci_online_retail"))
    report = result.report
    assert report.rows_in == len(_stdlib_rows(SHOPS / "invoices.csv")) == 412
    assert report.accounted and report.kept == naive.report.kept
    assert report.by_reason == {"cancellation": 36, "guest_without_id": 1}
    assert report.timestamps["nonexistent_shifted"] == 1  # 3/27/2011 1:30 (spring gap)
    assert report.timestamps["order"] is None  # the layout declares month-first

    def at(result: object, customer: str, item: str) -> list[datetime]:
        events = result.events  # type: ignore[attr-defined]
        chosen = events.filter((pl.col("customer_id") == customer) & (pl.col("item_id") == item))
        return sorted(chosen["timestamp"].to_list())

    # 3/25 12:55 is GMT (= UTC); 3/28 16:14 is BST (15:14 UTC); the gap line keeps 01:30 UTC
    assert datetime(2011, 3, 25, 12, 55, tzinfo=UTC) in at(result, "17850", "22752")
    assert datetime(2011, 3, 28, 15, 14, tzinfo=UTC) in at(result, "17850", "84406B")
    assert datetime(2011, 3, 28, 16, 14, tzinfo=UTC) in at(naive, "17850", "84406B")
    assert datetime(2011, 3, 27, 1, 30, tzinfo=UTC) in at(result, "17850", "22633")


def test_price_and_quantity_columns_are_mapped_and_parsed(tmp_path: Path) -> None:
    path = tmp_path / "lines.csv"
    path.write_text(
        "buyer,sku,when,qty,unit_price\n"
        "u1,A-1,2024-05-01 10:00,2,2.50\n"
        "u2,B-2,2024-05-01 11:00,1, 19.99 \n"
        'u3,C-3,2024-05-01 12:00,1,"2,50"\n'  # a decimal comma is not a number here
        "u4,D-4,2024-05-01 13:00,-1,1.00\n"
    )
    options = SourceOptions.from_cli(
        mapping=["buyer=customer_id", "sku=item_id", "when=timestamp"]
        + ["qty=quantity", "unit_price=price"],
        constants=["event_type=purchase"],
    )
    result = ingest(path, options)
    assert result.events.select("customer_id", "quantity", "price").rows() == [
        ("u1", 2.0, 2.5),
        ("u2", 1.0, 19.99),
    ]
    assert result.report.by_reason == {"unparseable_price": 1, "non_positive_quantity": 1}


def test_dry_run_writes_nothing_and_shows_what_happens(tmp_path: Path) -> None:
    options = SourceOptions.from_cli(
        mapping=["Member_number=customer_id", "Date=timestamp", "itemDescription=item_id"],
        constants=["event_type=purchase"],
    )
    before = sorted(SHOPS.iterdir())
    preview = dry_run(SHOPS / "grocery_orders.csv", options, rows=10)
    assert sorted(SHOPS.iterdir()) == before
    head = preview.head
    assert head["row"].to_list() == list(range(10))
    assert head.columns[:5] == ["row", "customer_id", "item_id", "event_type", "timestamp"]
    first = head.row(0, named=True)
    assert first["timestamp"] == "10-04-2015" and first["outcome"] == "kept"
    assert first["parsed_timestamp"] == datetime(2015, 4, 10, tzinfo=UTC)
    assert head.filter(pl.col("outcome") != "kept")["parsed_timestamp"].null_count() == (
        head.filter(pl.col("outcome") != "kept").height
    )
    examples = {r["reason"]: r for r in preview.examples.iter_rows(named=True)}
    assert examples["missing_item_id"]["rows"] == 1
    assert "customer_id=1007" in examples["missing_item_id"]["example"]
    assert sum(r["rows"] for r in examples.values()) == preview.result.report.quarantined
    assert preview.result.report.timestamps["order"] == "day-first"


def test_dry_run_marks_duplicates_and_keeps_the_event_order(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "customer_id,item_id,event_type,timestamp\n"
        "c1,i1,view,2024-01-01T00:00:00Z\n"
        "c1,i1,view,2024-01-01T00:00:00Z\n"
        "c2,i2,teleport,2024-01-02T00:00:00Z\n"
        "c3,i3,purchase,2024-01-03T00:00:00Z\n"
    )
    preview = dry_run(path)
    assert preview.head["outcome"].to_list() == ["kept", "duplicate", "unknown_event_type", "kept"]
    assert preview.head["parsed_timestamp"].to_list() == [
        datetime(2024, 1, 1, tzinfo=UTC),
        None,
        None,
        datetime(2024, 1, 3, tzinfo=UTC),
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.csv"]
