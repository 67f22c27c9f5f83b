"""SourceOptions: the same options from CLI flags and from [data] keys, checked on the way in."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from features.source_options import (
    KEYS,
    SourceOptions,
    read_source_file,
    recorded_weights,
    write_source_file,
)
from features.sources import SourceError

GROCERY = {
    "mapping": {"Member_number": "customer_id", "Date": "timestamp", "itemDescription": "item_id"},
    "set": {"event_type": "purchase"},
    "timestamp_format": "%d-%m-%Y",
    "timezone": "Europe/London",
    "event_aliases": {"transaction": "purchase", "wish": "wishlist"},
    "event_types": {"wishlist": 2.0},
}


def test_cli_flags_and_data_keys_build_the_same_options() -> None:
    from_cli = SourceOptions.from_cli(
        mapping=["Member_number=customer_id", "Date=timestamp", "itemDescription=item_id"],
        constants=["event_type=purchase"],
        timestamp_format="%d-%m-%Y",
        timezone="Europe/London",
        event_aliases=["transaction=purchase", "wish=wishlist"],
        event_types=["wishlist=2.0"],
    )
    assert from_cli == SourceOptions.from_dict(GROCERY)
    assert SourceOptions.from_dict(from_cli.to_dict()) == from_cli
    assert set(from_cli.to_dict()) == set(KEYS)
    assert from_cli.weights == {"wishlist": 2.0}


def test_validation_config_carries_types_aliases_and_timestamps() -> None:
    config = SourceOptions.from_dict(GROCERY).validation_config()
    assert "wishlist" in config.event_types.all
    assert config.event_aliases == {"transaction": "purchase", "wish": "wishlist"}
    assert config.timestamp_formats == ("%d-%m-%Y",)
    assert config.timezone == "Europe/London"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"maping": {}}, r"unknown source option\(s\) \['maping'\]"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"set": {"colour": "red"}}, "not event columns"),
        ({"event_aliases": {"wish": "wishlist"}}, "unknown event types"),
        ({"event_types": {"wishlist": "lots"}}, "expected a number"),
        ({"event_types": {"wishlist": float("inf")}}, "expected a number"),
        ({"mapping": ["a", "b"]}, "expected a table"),
        ({"mapping": {"a": 3}}, "non-empty strings"),
        ({"layout": "shopify"}, "unknown layout"),
        ({"rating_threshold": 4.0}, "movielens layout only"),
        ({"timestamp_format": 5}, "expected a string"),
    ],
)
def test_bad_options_are_clear_errors(data: dict, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        SourceOptions.from_dict(data)


def test_bad_cli_pairs_name_the_flag() -> None:
    with pytest.raises(SourceError, match="--set 'event_type' is not of the form column=value"):
        SourceOptions.from_cli(constants=["event_type"])
    with pytest.raises(SourceError, match="--event-type 'wishlist=' is not of the form"):
        SourceOptions.from_cli(event_types=["wishlist="])


def test_constants_add_columns_and_never_overwrite_one() -> None:
    options = SourceOptions.from_dict({"set": {"event_type": "purchase", "channel": "store"}})
    raw = pl.DataFrame({"customer_id": ["c1", "c2"]})
    added = options.apply_constants(raw)
    assert added["event_type"].to_list() == ["purchase", "purchase"]
    assert added["channel"].to_list() == ["store", "store"]
    with pytest.raises(SourceError, match=r"already fills column\(s\) \['event_type'\]"):
        options.apply_constants(added.drop("channel"))
    empty = raw.with_columns(event_type=pl.lit(None, pl.String), channel=pl.lit(None, pl.String))
    assert options.apply_constants(empty)["channel"].to_list() == ["store", "store"]


def test_source_file_round_trips_the_weights(tmp_path: Path) -> None:
    assert read_source_file(tmp_path) is None and recorded_weights(tmp_path) == {}
    write_source_file(SourceOptions.from_dict(GROCERY), tmp_path, source="orders.csv")
    recorded = read_source_file(tmp_path)
    assert recorded is not None and recorded["source"] == "orders.csv"
    assert SourceOptions.from_dict(recorded["options"]) == SourceOptions.from_dict(GROCERY)
    assert recorded_weights(tmp_path) == {"wishlist": 2.0}
