"""Built-in layouts on hand-written fixtures reproducing each export's quirks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from features.ingest import ingest
from features.layouts import LAYOUTS, get_layout, read_layout
from features.schema import EVENT_SCHEMA
from features.sources import SourceError
from features.validate import ValidationConfig

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def reasons(result) -> dict[int, str]:  # type: ignore[no-untyped-def]
    return dict(
        zip(result.quarantine["row"].to_list(), result.quarantine["reason"].to_list(), strict=True)
    )


def test_registry_names_the_four_layouts() -> None:
    assert set(LAYOUTS) == {"canonical", "retailrocket", "uci_online_retail", "movielens"}
    with pytest.raises(SourceError, match="unknown layout"):
        get_layout("shopify")


def test_retailrocket_events() -> None:
    result = ingest(
        FIXTURES / "retailrocket_events.csv",
        layout="retailrocket",
        config=ValidationConfig(now=NOW),
    )
    events, report = result.events, result.report
    assert events.schema == pl.Schema(EVENT_SCHEMA)
    assert report.rows_in == 15 and report.duplicates == 1  # the repeated addtocart line
    assert report.by_event_type == {"view": 6, "purchase": 2, "add_to_cart": 1}
    # timestamp in epoch milliseconds
    first = events.row(0, named=True)
    assert first["customer_id"] == "257597" and first["item_id"] == "355908"
    assert first["timestamp"] == datetime(2015, 6, 2, 5, 2, 12, 117000, tzinfo=UTC)
    assert reasons(result) == {
        10: "missing_customer_id",
        11: "unknown_event_type",  # "click" is not a RetailRocket event
        12: "unparseable_timestamp",
        13: "future_timestamp",  # 2100 in epoch ms
        14: "missing_item_id",
    }
    # the transaction id groups a checkout's purchases: it is the session id
    purchases = events.filter(pl.col("event_type") == "purchase")
    assert purchases["session_id"].to_list() == ["4000", "4000"]
    assert events.filter(pl.col("event_type") == "view")["session_id"].null_count() == 6
    assert result.quarantine.filter(pl.col("row") == 12)["timestamp"].item() == "not-a-time"


def test_uci_online_retail_invoice_lines() -> None:
    result = ingest(
        FIXTURES / "uci_online_retail.csv",
        layout="uci_online_retail",
        config=ValidationConfig(now=NOW),
    )
    events, report = result.events, result.report
    assert report.rows_in == 14 and report.duplicates == 1
    # "17850.0" and "17850" are the same customer; the invoice is the session
    assert set(events["customer_id"]) == {"17850", "13047", "14688"}
    lantern = events.filter(pl.col("item_id") == "71053").row(0, named=True)
    assert lantern["session_id"] == "536365" and lantern["price"] == pytest.approx(3.39)
    assert lantern["timestamp"] == datetime(2010, 12, 1, 8, 26, tzinfo=UTC)  # M/D/YYYY H:MM
    # the cancellation C536379 (-10) takes 8 from the later invoice and 2 from the earlier
    bird = events.filter(pl.col("item_id") == "84879")
    assert bird["quantity"].to_list() == [30.0]
    got = reasons(result)
    assert got[5] == "cancellation" and got[6] == "cancellation"  # purchase consumed + C line
    assert got[3] == "cancellation" and got[7] == "cancellation"  # hand warmer fully cancelled
    assert got[8] == "guest_without_id" and got[9] == "guest_without_id"
    assert got[10] == "non_positive_quantity"
    assert got[11] == "negative_price"  # "Adjust bad debt"
    assert got[13] == "unparseable_timestamp"
    assert report.adjustments["cancellations"] == 2
    assert report.adjustments["quantity_subtracted"] == pytest.approx(16.0)
    # a quoted description with a comma stays whole in the quarantine
    descriptions = result.quarantine["description"].to_list()
    assert "ASSORTED COLOUR BIRD ORNAMENT, LARGE" in descriptions


def test_uci_catalog_and_customers_from_the_invoice_lines(tmp_path: Path) -> None:
    ingest(FIXTURES / "uci_online_retail.csv", layout="uci_online_retail", out_dir=tmp_path)
    catalog = pl.read_parquet(tmp_path / "catalog.parquet")
    bird = catalog.filter(pl.col("item_id") == "84879").row(0, named=True)
    assert bird["title"] == "ASSORTED COLOUR BIRD ORNAMENT, LARGE"
    assert bird["price"] == pytest.approx(1.69)
    assert catalog.filter(pl.col("item_id") == "B")["price"].item() is None  # only < 0
    customers = pl.read_parquet(tmp_path / "customers.parquet")
    assert customers.rows() == [
        ("13047", "United Kingdom"),
        ("14688", "France"),
        ("17850", "United Kingdom"),
    ]


def test_uci_cancellations_can_be_recorded_instead_of_applied() -> None:
    result = ingest(
        FIXTURES / "uci_online_retail.csv",
        layout="uci_online_retail",
        config=ValidationConfig(now=NOW, returns="record"),
    )
    cancellations = result.events.filter(pl.col("event_type") == "cancellation")
    assert cancellations["quantity"].sort().to_list() == [6.0, 10.0]  # stored positive
    assert result.events.filter(pl.col("item_id") == "84879")["quantity"].sum() == 50.0
    assert "cancellation" not in result.report.by_reason


@pytest.mark.parametrize("name", ["ratings.csv", "u.data", "ratings.dat"])
def test_movielens_three_file_forms(name: str) -> None:
    raw = read_layout(FIXTURES / "movielens" / name, "movielens")
    assert raw.columns[:4] == ["customer_id", "item_id", "event_type", "timestamp"]
    result = ingest(FIXTURES / "movielens" / name, layout="movielens")
    events = result.events
    assert events.height > 0
    positive = events.filter(pl.col("event_type") == "rating_pos")["value"]
    negative = events.filter(pl.col("event_type") == "rating_neg")["value"]
    assert (positive >= 4.0).all() and (negative < 4.0).all()
    assert positive.len() + negative.len() == events.height


def test_movielens_values_threshold_and_bad_lines() -> None:
    result = ingest(FIXTURES / "movielens" / "ratings.csv", layout="movielens")
    first = result.events.row(0, named=True)
    assert (first["customer_id"], first["item_id"], first["value"]) == ("1", "1", 4.0)
    assert first["timestamp"] == datetime.fromtimestamp(964982703, tz=UTC)
    assert result.events.filter(pl.col("item_id") == "6")["event_type"].item() == "rating_neg"
    assert reasons(result) == {5: "unparseable_value", 6: "missing_timestamp"}
    strict = ingest(FIXTURES / "movielens" / "ratings.csv", layout="movielens", rating_threshold=5)
    assert strict.report.by_event_type == {"rating_neg": 4, "rating_pos": 1}


def test_movielens_dat_is_split_on_double_colon() -> None:
    raw = read_layout(FIXTURES / "movielens" / "ratings.dat", "movielens")
    assert raw.row(0)[:4] == ("1", "1193", "rating_pos", "978300760")
    assert raw["value"].to_list() == ["5", "3", "3", "5", "4"]


@pytest.mark.realdata
def test_movielens_latest_small(ml_small_ratings: Path) -> None:
    result = ingest(ml_small_ratings, layout="movielens")
    report = result.report
    lines = sum(1 for _ in ml_small_ratings.open()) - 1
    assert report.rows_in == lines
    assert report.accounted
    assert report.kept == lines  # the published file is clean
    assert report.customers == 610 and report.items == 9724
    pos = report.by_event_type["rating_pos"]
    ratings = pl.read_csv(ml_small_ratings)["rating"]
    assert pos == int((ratings >= 4.0).sum())
