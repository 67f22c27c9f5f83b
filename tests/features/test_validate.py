"""Validation: every reason code, mixed timestamps, exact duplicates, returns, bots, accounting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from features.report import AccountingError, IngestReport
from features.schema import EVENT_SCHEMA, Reason
from features.sources import read_raw
from features.validate import ValidationConfig, parse_timestamps, validate

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def raw_events(rows: list[dict[str, str | None]]) -> pl.DataFrame:
    base = {"customer_id": "c1", "item_id": "i1", "event_type": "view"}
    base["timestamp"] = "2024-03-01T10:00:00Z"
    filled = [{**base, **row} for row in rows]
    columns = sorted({k for row in filled for k in row})
    return pl.DataFrame(
        {c: [row.get(c) for row in filled] for c in columns},
        schema={c: pl.String for c in columns},
    )


def test_mixed_timestamp_formats() -> None:
    values = [
        "2024-03-01T10:00:00Z",
        "2024-03-01T11:00:00+01:00",
        "2024-03-01T10:00:00",
        "2024-03-01 10:00:00",
        "2024-03-01T10:00:00.000",
        "1709287200",  # epoch seconds
        "1709287200000",  # epoch milliseconds
        "1709287200.0",
        " 2024-03-01T10:00:00Z ",
        "2024-03-01T10:00",
    ]
    parsed = parse_timestamps(pl.Series(values + ["soon", "", None]))
    expected = datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert parsed.dtype == pl.Datetime("us", "UTC")
    assert parsed.to_list() == [expected] * len(values) + [None, None, None]
    day = parse_timestamps(pl.Series(["2024-03-01"]))
    assert day.to_list() == [datetime(2024, 3, 1, tzinfo=UTC)]
    us = parse_timestamps(pl.Series(["12/1/2010 8:26"]), formats=["%m/%d/%Y %H:%M"])
    assert us.to_list() == [datetime(2010, 12, 1, 8, 26, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"customer_id": None}, Reason.MISSING_CUSTOMER_ID),
        ({"customer_id": "  "}, Reason.MISSING_CUSTOMER_ID),
        ({"item_id": None}, Reason.MISSING_ITEM_ID),
        ({"customer_id": "tab\there"}, Reason.INVALID_ID),
        ({"item_id": "x" * 257}, Reason.INVALID_ID),
        ({"event_type": None}, Reason.MISSING_EVENT_TYPE),
        ({"event_type": "wishlist"}, Reason.UNKNOWN_EVENT_TYPE),
        ({"timestamp": None}, Reason.MISSING_TIMESTAMP),
        ({"timestamp": "31/02/2024"}, Reason.BAD_TIMESTAMP),
        ({"timestamp": "2030-01-01T00:00:00Z"}, Reason.FUTURE_TIMESTAMP),
        ({"timestamp": "0"}, Reason.OLD_TIMESTAMP),
        ({"event_type": "purchase", "quantity": "two"}, Reason.BAD_QUANTITY),
        ({"event_type": "purchase", "quantity": "0"}, Reason.NON_POSITIVE_QUANTITY),
        ({"event_type": "purchase", "quantity": "-2"}, Reason.NON_POSITIVE_QUANTITY),
        ({"event_type": "purchase", "price": "1,5"}, Reason.BAD_PRICE),
        ({"event_type": "purchase", "price": "-1"}, Reason.NEGATIVE_PRICE),
        ({"value": "high"}, Reason.BAD_VALUE),
    ],
)
def test_each_reason(row: dict[str, str | None], reason: Reason) -> None:
    raw = raw_events([{}, row])
    result = validate(raw, ValidationConfig(now=NOW))
    assert result.events.height == 1
    assert result.quarantine["reason"].to_list() == [reason.value]
    assert result.quarantine["row"].to_list() == [1]
    # the quarantined row keeps its original content
    original = raw.row(1, named=True)
    kept = result.quarantine.drop("row", "reason").row(0, named=True)
    assert kept == original


def test_view_with_zero_quantity_is_kept() -> None:
    result = validate(raw_events([{"quantity": "0"}]), ValidationConfig(now=NOW))
    assert result.events.height == 1


def test_events_are_typed_and_normalised() -> None:
    raw = raw_events(
        [
            {"customer_id": " c9 ", "event_type": " Add_To_Cart ", "channel": "App"},
            {"event_type": "addtocart", "quantity": "3", "price": "2.50", "session_id": "s"},
        ]
    )
    result = validate(raw, ValidationConfig(now=NOW, event_aliases={"AddToCart": "add_to_cart"}))
    events = result.events
    assert events.schema == pl.Schema(EVENT_SCHEMA)
    assert events["customer_id"].to_list() == ["c9", "c1"]
    assert events["event_type"].to_list() == ["add_to_cart", "add_to_cart"]
    assert events["channel"].to_list() == ["app", None]
    assert events["quantity"].to_list() == [1.0, 3.0]  # missing quantity counts as 1
    assert events["price"].to_list() == [None, 2.5]


def test_extra_event_types_from_config() -> None:
    from features.schema import EventTypes

    raw = raw_events([{"event_type": "wishlist"}])
    config = ValidationConfig(now=NOW, event_types=EventTypes(extra=("wishlist",)))
    assert validate(raw, config).events["event_type"].to_list() == ["wishlist"]


def test_exact_duplicates_only() -> None:
    raw = raw_events(
        [
            {},
            {},  # exact copy: duplicate
            {"timestamp": "2024-03-01T10:00:01Z"},  # differs in one column: kept
            {"session_id": "s1"},  # differs by a column the others leave empty: kept
            {"customer_id": None},
            {"customer_id": None},  # duplicate of a bad row: counted once as duplicate
        ]
    )
    result = validate(raw, ValidationConfig(now=NOW))
    report = result.report
    assert report.duplicates == 2
    assert report.kept == 3 and report.quarantined == 1
    assert result.quarantine["row"].to_list() == [4]
    no_dedup = validate(raw, ValidationConfig(now=NOW, drop_duplicates=False)).report
    assert no_dedup.duplicates == 0 and no_dedup.kept == 4


def test_duplicates_ignore_columns_that_are_null_throughout() -> None:
    # a layout adds columns the export lacks (null in every row); rows still differ elsewhere
    raw = raw_events([{}, {}, {"item_id": "i2"}]).with_columns(
        price=pl.lit(None, pl.String), channel=pl.lit(None, pl.String)
    )
    report = validate(raw, ValidationConfig(now=NOW)).report
    assert (report.kept, report.duplicates) == (2, 1)
    # every column null: the rows are all identical
    blank = pl.DataFrame({c: [None] * 3 for c in raw.columns}, schema=raw.schema)
    report = validate(blank, ValidationConfig(now=NOW)).report
    assert (report.quarantined, report.duplicates) == (1, 2)


def test_report_counts_distinct_kept_customers_and_items() -> None:
    raw = raw_events(
        [
            {"customer_id": "c1", "item_id": "i1"},
            {"customer_id": "c2", "item_id": "i1", "timestamp": "2024-03-02"},
            {"customer_id": "c1", "item_id": "i2", "timestamp": "2024-03-03"},
            {"customer_id": "c3", "event_type": "nope"},  # quarantined: not counted
        ]
    )
    report = validate(raw, ValidationConfig(now=NOW)).report
    assert (report.customers, report.items) == (2, 2)
    nothing = validate(raw.tail(1), ValidationConfig(now=NOW)).report
    assert (nothing.kept, nothing.customers, nothing.items) == (0, 0, 0)
    assert nothing.first_event is None


def test_catalog_makes_unknown_items_quarantined() -> None:
    raw = raw_events([{"item_id": "i1"}, {"item_id": "i2"}, {"item_id": "i9"}])
    result = validate(raw, ValidationConfig(now=NOW), catalog_items=["i1", "i2"])
    assert result.events["item_id"].to_list() == ["i1", "i2"]
    assert result.quarantine["reason"].to_list() == ["unknown_item"]


def test_bot_filter_caps_events_per_day() -> None:
    day = datetime(2024, 3, 1, tzinfo=UTC)
    rows: list[dict[str, str | None]] = [
        {"customer_id": "bot", "timestamp": (day + timedelta(seconds=i)).isoformat()}
        for i in range(30)
    ]
    rows += [
        {"customer_id": "human", "timestamp": (day + timedelta(days=i)).isoformat()}
        for i in range(30)
    ]
    rows.append({"customer_id": "bot", "event_type": "nope"})  # keeps its own reason
    result = validate(raw_events(rows), ValidationConfig(now=NOW, max_events_per_day=20))
    assert set(result.events["customer_id"]) == {"human"}
    assert result.report.by_reason == {"bot_customer": 30, "unknown_event_type": 1}
    assert result.report.bot_customers == 1


def test_returns_applied_latest_purchase_first() -> None:
    rows: list[dict[str, str | None]] = [
        {"event_type": "purchase", "quantity": "3", "timestamp": "2024-03-01T10:00:00Z"},
        {"event_type": "purchase", "quantity": "2", "timestamp": "2024-03-02T10:00:00Z"},
        {"event_type": "return", "quantity": "-4", "timestamp": "2024-03-03T10:00:00Z"},
        {"event_type": "purchase", "item_id": "i2", "quantity": "1"},
        {"event_type": "cancellation", "item_id": "i3", "quantity": "1"},  # nothing to cancel
    ]
    result = validate(raw_events(rows), ValidationConfig(now=NOW))
    purchases = result.events.filter(pl.col("event_type") == "purchase")
    assert purchases.select("item_id", "quantity").rows() == [("i1", 1.0), ("i2", 1.0)]
    assert dict(zip(result.quarantine["row"], result.quarantine["reason"], strict=True)) == {
        1: "return",  # the later purchase, fully returned
        2: "return",
        4: "cancellation",
    }
    adjustments = result.report.adjustments
    assert adjustments["quantity_subtracted"] == 4.0
    assert adjustments["quantity_unmatched"] == 1.0
    assert adjustments["purchases_reduced"] == 1 and adjustments["purchases_removed"] == 1


def test_returns_recorded_as_events() -> None:
    rows: list[dict[str, str | None]] = [
        {"event_type": "purchase", "quantity": "3"},
        {"event_type": "return", "quantity": "-1"},
    ]
    result = validate(raw_events(rows), ValidationConfig(now=NOW, returns="record"))
    assert result.events.select("event_type", "quantity").rows() == [
        ("purchase", 3.0),
        ("return", 1.0),
    ]


def test_extra_columns_named_like_working_columns_are_kept() -> None:
    raw = raw_events([{"customer_id": None}, {}]).with_columns(
        row=pl.lit("r"), reason=pl.lit("x"), _id=pl.Series(["a", "b"]), _code=pl.lit("c")
    )
    result = validate(raw, ValidationConfig(now=NOW))
    quarantine = result.quarantine.row(0, named=True)
    assert quarantine["row"] == 0 and quarantine["reason"] == "missing_customer_id"
    assert quarantine["source_row"] == "r" and quarantine["source_reason"] == "x"
    assert quarantine["_id"] == "a" and quarantine["_code"] == "c"
    assert result.events.height == 1


def test_missing_required_column_is_a_clear_error() -> None:
    raw = raw_events([{}]).drop("item_id")
    with pytest.raises(ValueError, match="item_id"):
        validate(raw)


def test_accounting_is_enforced() -> None:
    report = IngestReport(rows_in=10, kept=5, quarantined=3, duplicates=1, by_reason={"x": 3})
    assert not report.accounted
    with pytest.raises(AccountingError, match="rows_in=10"):
        report.check()
    IngestReport(rows_in=9, kept=5, quarantined=3, duplicates=1, by_reason={"x": 3}).check()


def test_canonical_fixture_accounts_for_every_row() -> None:
    raw = read_raw(FIXTURES / "canonical_events.csv")
    result = validate(raw, ValidationConfig(now=NOW))
    report = result.report
    assert report.rows_in == raw.height
    assert report.kept + report.quarantined + report.duplicates == raw.height
    kept_rows = set(range(raw.height)) - set(result.quarantine["row"])
    assert len(kept_rows) == report.kept + report.duplicates
    assert result.quarantine["reason"].null_count() == 0
    assert report.to_dict()["accounted"] is True
    again = IngestReport.from_dict(report.to_dict())
    assert again.by_reason == report.by_reason
    text = report.summary()
    assert "rows in" in text and "unparseable_timestamp" in text
