"""Sources: CSV/Parquet files and folders read as strings, column mapping, clear errors."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from features.sources import SourceError, parse_mapping, read_raw

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def test_csv_columns_are_strings_with_original_content(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("\ufeffuser , item,ts\n007,1.50,2024-01-01\n8,x,\n")
    raw = read_raw(path)
    assert raw.columns == ["user", "item", "ts"]  # BOM and spaces dropped from the header
    assert all(dtype == pl.String for dtype in raw.dtypes)
    assert raw.row(0) == ("007", "1.50", "2024-01-01")  # leading zeros and decimals kept
    assert raw.row(1) == ("8", "x", None)


def test_mapping_renames_to_canonical_and_rejects_unknown_columns(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("visitorid,itemid,customer_id\n1,2,old\n")
    raw = read_raw(path, mapping={"visitorid": "customer_id", "itemid": "item_id"})
    assert raw.columns == ["customer_id", "item_id"]  # the mapped column replaces a clash
    assert raw.row(0) == ("1", "2")
    with pytest.raises(SourceError, match="nope"):
        read_raw(path, mapping={"nope": "customer_id"})


def test_folder_of_csv_and_parquet_files_is_concatenated(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "a.csv").write_text("customer_id,item_id\nc1,i1\n")
    pl.DataFrame({"customer_id": [2], "item_id": ["i2"], "extra": [1.5]}).write_parquet(
        folder / "b.parquet"
    )
    (folder / "notes.md").write_text("ignored")
    raw = read_raw(folder)
    assert raw.height == 2
    assert all(dtype == pl.String for dtype in raw.dtypes)
    assert raw["customer_id"].to_list() == ["c1", "2"]
    assert raw["extra"].to_list() == [None, "1.5"]


def test_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        read_raw(tmp_path / "missing.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no CSV or Parquet"):
        read_raw(tmp_path / "empty")
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(SourceError, match="format"):
        read_raw(tmp_path / "data.xlsx")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(SourceError, match="empty"):
        read_raw(tmp_path / "empty.csv")
    (tmp_path / "ragged.csv").write_text('a,b\n1,2\n"x,y",3\n3,4,5\n6\n')
    with pytest.raises(SourceError, match="line 4 has more fields"):
        read_raw(tmp_path / "ragged.csv")


def test_header_only_file_validates_to_an_empty_report(tmp_path: Path) -> None:
    from features.validate import validate

    path = tmp_path / "events.csv"
    path.write_text("customer_id,item_id,event_type,timestamp\n")
    result = validate(read_raw(path))
    assert result.report.rows_in == 0 and result.report.accounted
    assert result.events.height == 0 and result.quarantine.height == 0


def test_parse_mapping() -> None:
    assert parse_mapping(["visitorid=customer_id", " itemid = item_id "]) == {
        "visitorid": "customer_id",
        "itemid": "item_id",
    }
    with pytest.raises(SourceError):
        parse_mapping(["visitorid"])
