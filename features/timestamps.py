"""Parse raw timestamp strings to UTC: epoch numbers, ISO 8601, given formats, local dates.

Steps, each running only on the values the previous ones left unparsed (vectorised polars):

1. integer epoch numbers (s / ms / us / ns, the unit from the magnitude) on the whole column;
2. decimal epoch numbers;
3. the formats a user or a layout gives (``--timestamp-format``), then the built-in ISO 8601
   formats :data:`TIMESTAMP_FORMATS`;
4. when no format was given, **day-first / month-first dates** (``21-07-2015``,
   ``07/21/2015``, ``1/12/2010 8:26``): the order is decided from the distinct values whose
   first or second field exceeds 12 (:func:`detect_date_order`). A file where every such date
   reads both ways, or where some dates read only day-first and others only month-first, is
   refused (:class:`TimestampOrderError`, with sample values) rather than guessed.

Epoch numbers and texts carrying an offset or ``Z`` are absolute. Naive texts are local
times in ``timezone`` (default UTC), converted to UTC with the rule of Python's ``zoneinfo``
(``fold=0``): an **ambiguous** time (autumn, the hour that happens twice) is the earlier
instant, i.e. the summer-time reading; a **nonexistent** time (spring gap, e.g. 01:30 on
2011-03-27 in London) is read with the offset in force before the change, i.e. moved forward
by the gap (01:30 -> 02:30 BST = 01:30 UTC). Both are counted in :class:`TimestampInfo`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

TIMESTAMP_FORMATS: tuple[str, ...] = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M%#z",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
)
"""Text timestamps tried in order after epoch numbers: ISO 8601 with a zone (``Z`` or an
offset) or without one (a local time in the source time zone, UTC by default), ``T`` or space
separated, with optional fractions."""

_ISO_START = r"^[+-]?\d{4}-\d"
"""Values the ISO 8601 formats are tried on: a four-digit year first."""

DateOrder = Literal["day-first", "month-first"]

_TS = pl.Datetime("us", "UTC")

_LOCAL_DATE = r"^(\d{1,2})([-/.])(\d{1,2})([-/.])(\d{4}|\d{2})(?:$|[ T](\d{1,2}:\d{2}))"
"""A day/month/year or month/day/year date, optionally followed by a time."""

_TIME_SUFFIXES: tuple[str, ...] = (" %H:%M:%S%.f", " %H:%M", "T%H:%M:%S%.f", "T%H:%M", "")

SAMPLES = 5
"""Sample values shown in a refusal."""


class TimestampOrderError(ValueError):
    """Day-first/month-first cannot be decided from the values: pass a timestamp format."""


@dataclass
class TimestampInfo:
    """How a column's timestamps were read (shown in the ingest report)."""

    timezone: str = "UTC"
    order: DateOrder | None = None
    """Day/month order detected from the values (None: no such dates, or a format given)."""
    formats: list[str] = field(default_factory=list)
    """The formats the detected order stands for."""
    nonexistent_shifted: int = 0
    """Naive local times in a spring gap, moved forward by the gap."""
    ambiguous_earliest: int = 0
    """Naive local times in an autumn overlap, read as the earlier instant."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_timezone(name: str) -> str:
    """``name`` if it is an IANA time zone (``Europe/London``), else a ValueError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name such as 'UTC' or 'Europe/London'"
        ) from None
    return name


# --- epoch numbers -------------------------------------------------------------------------


def _epoch_expr(numbers: pl.Expr) -> pl.Expr:
    """Epoch numbers -> UTC datetimes; the unit (s, ms, us, ns) from the magnitude."""
    magnitude = numbers.abs()
    micros = (
        pl.when(magnitude < 1e11)
        .then(numbers * 1_000_000)
        .when(magnitude < 1e14)
        .then(numbers * 1_000)
        .when(magnitude < 1e17)
        .then(numbers)
        .otherwise(numbers / 1_000)
    )
    return micros.cast(pl.Int64, strict=False).cast(_TS)


def fast_timestamps(raw: pl.Series) -> pl.Series:
    """The cheap path, run on the whole column: integer epoch numbers (null elsewhere).

    When every integer is in one unit's range (the usual export), one multiplication
    converts the column; mixed units go through the per-row magnitude rule.
    """
    ints = raw.cast(pl.Int64, strict=False)
    low, high = ints.min(), ints.max()
    if low is None or high is None:
        return ints.cast(_TS)
    assert isinstance(low, int) and isinstance(high, int)
    if low >= 1e11 and high < 1e14:  # all milliseconds
        return (ints * 1_000).cast(_TS)
    if low >= 0 and high < 1e11:  # all seconds
        return (ints * 1_000_000).cast(_TS)
    return ints.to_frame().select(_epoch_expr(pl.col(ints.name))).to_series()


# --- day-first / month-first ---------------------------------------------------------------


def detect_date_order(values: pl.Series) -> tuple[DateOrder | None, list[str]]:
    """The day/month order of the local dates among ``values`` and the formats it stands for.

    Looks at every distinct value shaped like ``d-m-Y`` / ``m/d/Y`` (any of ``-/.``, 2- or
    4-digit years, an optional time): a first field above 12 can only be a day, a second
    field above 12 only a day too. Returns ``(None, [])`` when no value has that shape;
    raises :class:`TimestampOrderError` when the values allow both orders throughout or
    contradict each other.
    """
    distinct = values.drop_nulls().str.strip_chars().unique().sort()
    fields = (
        distinct.to_frame("text")
        .with_columns(parts=pl.col("text").str.extract_groups(_LOCAL_DATE))
        .unnest("parts")
        .filter(pl.col("1").is_not_null() & (pl.col("2") == pl.col("4")))
        .with_columns(
            first=pl.col("1").cast(pl.Int32),
            second=pl.col("3").cast(pl.Int32),
        )
    )
    if fields.height == 0:
        return None, []
    day_first = fields.filter((pl.col("first") > 12) & (pl.col("second") <= 12))
    month_first = fields.filter((pl.col("second") > 12) & (pl.col("first") <= 12))
    hint = "pass --timestamp-format (timestamp_format in an experiment file), e.g. %d-%m-%Y"
    if day_first.height and month_first.height:
        raise TimestampOrderError(
            "dates contradict each other: some read only day-first "
            f"({_samples(day_first)}), others only month-first ({_samples(month_first)}); "
            f"{hint}"
        )
    if not day_first.height and not month_first.height:
        both = fields.filter((pl.col("first") <= 12) & (pl.col("second") <= 12))
        if both.height == 0:  # no value is a date either way: quarantined as unparseable
            return None, []
        raise TimestampOrderError(
            f"cannot tell day-first from month-first dates: all {both.height:,} distinct "
            f"dates read both ways (e.g. {_samples(both)}); {hint}"
        )
    order: DateOrder = "day-first" if day_first.height else "month-first"
    shapes = fields.select(sep=pl.col("2"), short=pl.col("5").str.len_chars() == 2).unique()
    formats = []
    # two-digit years first: "%Y" would read "15" as the year 15
    for sep, short in shapes.sort("short", "sep", descending=[True, False]).iter_rows():
        year = "%y" if short else "%Y"
        date = f"%d{sep}%m{sep}{year}" if order == "day-first" else f"%m{sep}%d{sep}{year}"
        formats += [date + suffix for suffix in _TIME_SUFFIXES]
    return order, formats


def _samples(fields: pl.DataFrame) -> str:
    return ", ".join(repr(v) for v in fields["text"].head(SAMPLES).to_list())


# --- text ----------------------------------------------------------------------------------


def _aware(fmt: str) -> bool:
    return "%z" in fmt or "%#z" in fmt or "%:z" in fmt


def localize(naive: pl.Series, timezone: str, info: TimestampInfo) -> pl.Series:
    """Naive local datetimes in ``timezone`` -> UTC (see the module docstring for the rule
    on ambiguous and nonexistent times); counts both into ``info``."""
    early = naive.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
    late = naive.dt.replace_time_zone(timezone, ambiguous="latest", non_existent="null")
    info.ambiguous_earliest += int((early != late).sum())
    result = early.dt.convert_time_zone("UTC")
    gap = (early.is_null() & naive.is_not_null()).arg_true()
    if gap.len():
        # few values (one clock change a year): zoneinfo's fold=0 reading, per value
        zone = ZoneInfo(timezone)
        shifted = [
            value.replace(tzinfo=zone).astimezone(UTC) for value in naive.gather(gap).to_list()
        ]
        result = result.scatter(gap, pl.Series(shifted, dtype=_TS))
        info.nonexistent_shifted += gap.len()
    return result


def _parse_format(text: pl.Series, fmt: str, timezone: str, info: TimestampInfo) -> pl.Series:
    if timezone == "UTC" or _aware(fmt):
        return text.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC")
    naive = text.str.to_datetime(fmt, strict=False, time_unit="us")
    if naive.dtype != pl.Datetime("us"):  # a format with a zone name
        return naive.dt.convert_time_zone("UTC")
    return localize(naive, timezone, info)


def _parse_text(
    text: pl.Series, formats: Sequence[str], detect: bool, info: TimestampInfo
) -> pl.Series:
    """The slow path, for the few values the integer path left: decimals, text formats, then
    (``detect``) day-first / month-first dates."""
    text = text.str.strip_chars()
    parsed = pl.select(_epoch_expr(pl.lit(text).cast(pl.Float64, strict=False))).to_series()

    def attempt(fmts: Sequence[str], parsed: pl.Series, only: pl.Series | None = None) -> pl.Series:
        for fmt in fmts:
            todo = parsed.is_null() if only is None else parsed.is_null() & only
            left = todo.arg_true()
            if left.len() == 0:
                break
            parsed = parsed.scatter(
                left, _parse_format(text.gather(left), fmt, info.timezone, info)
            )
        return parsed

    parsed = attempt(formats, parsed)
    # ISO 8601 only where the year comes first: chrono's %Y also takes a two-digit year, so
    # "21-07-15" would otherwise read as 21 July 15 AD instead of reaching the day/month rule
    parsed = attempt(TIMESTAMP_FORMATS, parsed, only=text.str.contains(_ISO_START).fill_null(False))
    if detect and not formats:
        left = parsed.is_null().arg_true()
        if left.len():
            info.order, info.formats = detect_date_order(text.gather(left))
            parsed = attempt(info.formats, parsed)
    return parsed


def complete_timestamps(
    parsed: pl.Series,
    raw: pl.Series,
    formats: Sequence[str] = (),
    *,
    timezone: str = "UTC",
    detect: bool = False,
) -> tuple[pl.Series, TimestampInfo]:
    """Fill what the integer path left (raw present, parsed null) from the slow path.

    ``parsed`` is filled in place: pass a series nothing else holds (a fresh
    :func:`fast_timestamps` result), so the column is not copied.
    """
    info = TimestampInfo(timezone=timezone)
    todo = (parsed.is_null() & raw.is_not_null()).arg_true()
    if todo.len() == 0:
        return parsed, info
    return parsed.scatter(todo, _parse_text(raw.gather(todo), formats, detect, info)), info


def parse_timestamps(
    raw: pl.Series,
    formats: Sequence[str] = (),
    *,
    timezone: str = "UTC",
    detect: bool = False,
) -> pl.Series:
    """Parse mixed-format timestamps to ``Datetime("us", "UTC")``; null where unparseable.

    Accepts epoch seconds / milliseconds / microseconds (integers or decimals) and the text
    formats in ``formats`` then :data:`TIMESTAMP_FORMATS` (then, with ``detect``, local dates
    in the detected day/month order). The cheap integer path runs on the whole column; each
    slower format runs only on the rows still unparsed.
    """
    raw = raw.cast(pl.String)
    parsed, _ = complete_timestamps(
        fast_timestamps(raw), raw, formats, timezone=timezone, detect=detect
    )
    return parsed.rename(raw.name)
