"""The one id rule (features.ids): the checker, its regular expression in Python and in
polars, and ingest's use of it (kept as written, stripped when padded, else invalid_id)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from id_strategies import ODD_IDS, invalid_ids, valid_ids

from features.ids import ID_PATTERN, MAX_ID_LENGTH, WHITESPACE, check_id, is_valid_id
from features.schema import Reason
from features.sources import read_raw
from features.validate import ValidationConfig, validate

NOW_CONFIG = ValidationConfig(now=datetime(2025, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize("value", ODD_IDS)
def test_real_world_ids_are_valid(value: str) -> None:
    assert check_id(value) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "must not be empty"),
        ("x" * (MAX_ID_LENGTH + 1), "257 characters; at most 256"),
        ("tab\there", "control character U+0009 at position 3"),
        ("new\nline", "U+000A"),
        ("nul\x00", "U+0000"),
        ("del\x7f", "U+007F"),
        ("c1\x85", "U+0085"),
        ("sep\x1fx", "U+001F"),
        (" padded", "starts or ends with whitespace"),
        ("padded ", "starts or ends with whitespace"),
        ("\u3000ideographic", "starts or ends with whitespace"),
        ("nbsp\xa0", "starts or ends with whitespace"),
        ("lone\ud800", "lone surrogate at position 4"),
        (42, "must be a string"),
        (None, "must be a string"),
    ],
)
def test_invalid_ids_get_a_message_naming_the_problem(value: object, message: str) -> None:
    with pytest.raises(ValueError, match="item_id") as error:
        check_id(value, "item_id")
    assert message in str(error.value)
    assert not is_valid_id(value)


def test_the_whitespace_set_is_what_python_and_polars_strip() -> None:
    every = [chr(c) for c in range(0x3001)]
    python = {c for c in every if c.isspace() and not 0x1C <= ord(c) <= 0x1F}
    assert python == set(WHITESPACE)  # (Python also strips U+001C-U+001F: controls anyway)
    padded = pl.Series([f"{c}x{c}" for c in every])
    stripped = padded.str.strip_chars().to_list()
    assert {c for c, s in zip(every, stripped, strict=True) if s == "x"} == set(WHITESPACE)


@given(st.lists(st.one_of(valid_ids, invalid_ids, st.text(max_size=8)), max_size=20))
@settings(max_examples=200, deadline=None)
def test_the_pattern_in_python_and_polars_agrees_with_check_id(values: list[str]) -> None:
    """The same rule three ways: the checker, ``re.fullmatch``, and polars (Rust regex)."""
    expected = [is_valid_id(v) for v in values]
    python = [bool(re.fullmatch(ID_PATTERN, v)) and len(v) <= MAX_ID_LENGTH for v in values]
    series = pl.Series(values, dtype=pl.String)
    vectorised = series.str.contains(ID_PATTERN) & (series.str.len_chars() <= MAX_ID_LENGTH)
    assert python == expected
    assert vectorised.to_list() == expected


def _raw(customers: list[str], items: list[str]) -> pl.DataFrame:
    n = len(customers)
    return pl.DataFrame(
        {
            "customer_id": customers,
            "item_id": items,
            "event_type": ["view"] * n,
            "timestamp": [str(1_700_000_000 + k) for k in range(n)],
        }
    )


@given(st.lists(valid_ids, min_size=1, max_size=30), st.data())
@settings(max_examples=60, deadline=None)
def test_ingest_keeps_every_valid_id_byte_for_byte(ids: list[str], data: st.DataObject) -> None:
    """Valid ids are kept as written; padded ones (an export's spaces) under the stripped id."""
    pads = data.draw(
        st.lists(
            st.sampled_from(["", " ", "\t", "\u3000"]), min_size=2 * len(ids), max_size=2 * len(ids)
        )
    )
    customers = [pads[k] + v + pads[k] for k, v in enumerate(ids)]
    items = [pads[len(ids) + k] + v for k, v in enumerate(reversed(ids))]
    result = validate(_raw(customers, items), NOW_CONFIG)
    assert result.report.quarantined == 0, result.quarantine
    assert result.events["customer_id"].to_list() == ids
    assert result.events["item_id"].to_list() == list(reversed(ids))


@given(st.lists(invalid_ids, min_size=1, max_size=10))
@settings(max_examples=60, deadline=None)
def test_ingest_quarantines_invalid_ids_like_check_id_rejects_them(bad: list[str]) -> None:
    """What the API rejects, ingest quarantines as invalid_id (or missing when blank);
    padding alone is the exception: ingest strips it, as exports pad fields."""
    customers = [*bad, *(["ok"] * len(bad))]
    items = [*(["item"] * len(bad)), *bad]
    result = validate(
        _raw(customers, items), ValidationConfig(now=NOW_CONFIG.now, drop_duplicates=False)
    )
    expected = []
    for value in [*bad, *bad]:
        stripped = value.strip(WHITESPACE)
        if not stripped:
            expected.append(None)  # missing (customer or item)
        elif is_valid_id(stripped):
            expected.append("kept")
        else:
            expected.append(Reason.INVALID_ID.value)
    reasons = dict(
        zip(result.quarantine["row"].to_list(), result.quarantine["reason"].to_list(), strict=True)
    )
    for row, want in enumerate(expected):
        if want == "kept":
            assert row not in reasons
        elif want is None:
            assert reasons[row].startswith("missing_")
        else:
            assert reasons[row] == want, (repr([*bad, *bad][row]), reasons.get(row))


SHOPS = Path(__file__).resolve().parents[1] / "fixtures" / "shops"


@pytest.mark.parametrize(
    ("name", "mapping", "constant", "config"),
    [
        (
            "grocery_orders.csv",
            {"Member_number": "customer_id", "Date": "timestamp", "itemDescription": "item_id"},
            {"event_type": "purchase"},
            ValidationConfig(now=NOW_CONFIG.now, timestamp_formats=("%d-%m-%Y",)),
        ),
        (
            "clickstream.csv",
            {
                "event_time": "timestamp",
                "session": "session_id",
                "visitor": "customer_id",
                "product": "item_id",
                "action": "event_type",
            },
            {},
            ValidationConfig(
                now=NOW_CONFIG.now,
                event_aliases={"addtocart": "add_to_cart", "transaction": "purchase"},
            ),
        ),
    ],
)
def test_the_fixture_shops_ids_are_all_kept(
    name: str, mapping: dict[str, str], constant: dict[str, str], config: ValidationConfig
) -> None:
    """Product names as ids (spaces, parentheses, slashes, commas, quotes, non-ASCII): none
    is invalid_id, and each kept row has the id exactly as the file wrote it."""
    raw = read_raw(SHOPS / name, mapping=mapping).with_columns(
        pl.lit(v).alias(k) for k, v in constant.items()
    )
    result = validate(raw, config)
    assert Reason.INVALID_ID.value not in result.report.by_reason
    assert result.report.kept > 0.9 * result.report.rows_in
    written = raw.filter(
        pl.col("customer_id").is_not_null() & pl.col("item_id").is_not_null()
    ).select("customer_id", "item_id")
    kept = result.events.select("customer_id", "item_id")
    assert set(kept.rows()) <= set(written.rows())
    assert any(" " in i or not i.isascii() for i in kept["item_id"].to_list())
