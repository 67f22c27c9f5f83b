"""Timestamps: day-first/month-first detection, source time zones, DST gaps and overlaps."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from features.timestamps import (
    TimestampInfo,
    TimestampOrderError,
    check_timezone,
    complete_timestamps,
    detect_date_order,
    fast_timestamps,
    localize,
    parse_timestamps,
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def parse(
    values: list[str | None], **options: object
) -> tuple[list[datetime | None], TimestampInfo]:
    raw = pl.Series("timestamp", values, dtype=pl.String)
    parsed, info = complete_timestamps(fast_timestamps(raw), raw, **options)  # type: ignore[arg-type]
    return parsed.to_list(), info


def test_day_first_is_detected_from_a_day_above_12() -> None:
    values, info = parse(["21-07-2015", "01-02-2015", "3-4-2015"], detect=True)
    assert info.order == "day-first"
    assert "%d-%m-%Y" in info.formats
    assert values == [utc(2015, 7, 21), utc(2015, 2, 1), utc(2015, 4, 3)]


def test_month_first_with_times_and_slashes() -> None:
    values, info = parse(["12/1/2010 8:26", "07/21/2015", "1/13/2011 17:05:09"], detect=True)
    assert info.order == "month-first"
    assert values == [utc(2010, 12, 1, 8, 26), utc(2015, 7, 21), utc(2011, 1, 13, 17, 5, 9)]


def test_two_digit_years_are_not_read_as_year_15() -> None:
    values, info = parse(["21.07.15", "02.03.15"], detect=True)
    assert info.order == "day-first" and values == [utc(2015, 7, 21), utc(2015, 3, 2)]


def test_two_digit_years_with_dashes_reach_the_day_month_rule() -> None:
    """%Y would take "21-07-15" as year 21: ISO formats only try values with a 4-digit year."""
    values, info = parse(["21-07-15", "05/08/15", "2015-07-22"], detect=True)
    assert info.order == "day-first"
    assert values == [utc(2015, 7, 21), utc(2015, 8, 5), utc(2015, 7, 22)]


def test_ambiguous_dates_are_refused_with_samples() -> None:
    with pytest.raises(TimestampOrderError, match="read both ways") as error:
        parse(["01-02-2015", "03-04-2015", "12-11-2015"], detect=True)
    message = str(error.value)
    assert "'01-02-2015'" in message and "--timestamp-format" in message


def test_contradicting_dates_are_refused() -> None:
    with pytest.raises(TimestampOrderError, match="contradict") as error:
        parse(["21-07-2015", "07-21-2015"], detect=True)
    assert "'21-07-2015'" in str(error.value) and "'07-21-2015'" in str(error.value)


def test_detection_is_off_with_a_format_and_when_not_asked() -> None:
    # a given format wins: no detection, no refusal; what it does not match stays null
    values, info = parse(["01-02-2015", "2015-03-01"], formats=["%m-%d-%Y"], detect=True)
    assert info.order is None and values == [utc(2015, 1, 2), utc(2015, 3, 1)]
    values, info = parse(["21-07-2015"])  # parse_timestamps' default: no detection
    assert values == [None] and info.order is None


def test_iso_and_epoch_values_need_no_detection() -> None:
    values, info = parse(["2015-07-21", "1437436800", "not a time"], detect=True)
    assert info.order is None
    assert values == [utc(2015, 7, 21), utc(2015, 7, 21), None]
    assert detect_date_order(pl.Series(["2015-07-21", "x"])) == (None, [])
    assert detect_date_order(pl.Series(["31-13-2015"])) == (None, [])  # no date either way


def test_london_times_become_utc_across_the_clock_changes() -> None:
    values, info = parse(
        [
            "2011-03-25 12:55",  # GMT
            "2011-03-28 16:14",  # BST: one hour ahead
            "2011-03-27 01:30",  # spring gap: does not exist, read with GMT (shifted forward)
            "2011-10-30 01:30",  # autumn overlap: happens twice, the earlier (BST) instant
            "2011-06-01T12:00:00Z",  # carries a zone: the time zone option does not apply
            "1306929600",  # epoch seconds are UTC
        ],
        timezone="Europe/London",
    )
    assert values == [
        utc(2011, 3, 25, 12, 55),
        utc(2011, 3, 28, 15, 14),
        utc(2011, 3, 27, 1, 30),
        utc(2011, 10, 30, 0, 30),
        utc(2011, 6, 1, 12),
        utc(2011, 6, 1, 12),
    ]
    assert info.nonexistent_shifted == 1 and info.ambiguous_earliest == 1


def test_a_gap_in_a_zone_with_a_half_hour_change() -> None:
    # Lord Howe Island moves its clocks by 30 minutes: 02:00 -> 02:30 on 2021-10-03
    info = TimestampInfo(timezone="Australia/Lord_Howe")
    naive = pl.Series([datetime(2021, 10, 3, 2, 15)], dtype=pl.Datetime("us"))
    shifted = localize(naive, "Australia/Lord_Howe", info).to_list()
    assert shifted == [utc(2021, 10, 2, 15, 45)]  # read at +10:30, the offset before the change
    assert info.nonexistent_shifted == 1


def test_day_first_dates_in_a_time_zone() -> None:
    values, info = parse(
        ["27/03/2011 01:30", "28/03/2011 16:14"], detect=True, timezone="Europe/London"
    )
    assert info.order == "day-first"
    assert values == [utc(2011, 3, 27, 1, 30), utc(2011, 3, 28, 15, 14)]


def test_parse_timestamps_keeps_its_name_and_options() -> None:
    parsed = parse_timestamps(pl.Series("created", ["2011-03-28 16:14"]), timezone="Europe/London")
    assert parsed.name == "created" and parsed.to_list() == [utc(2011, 3, 28, 15, 14)]


def test_unknown_time_zone_is_a_clear_error() -> None:
    assert check_timezone("Europe/London") == "Europe/London"
    with pytest.raises(ValueError, match="unknown time zone 'Europe/Londn'"):
        check_timezone("Europe/Londn")
