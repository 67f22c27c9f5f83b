"""Validate raw events into ``EVENT_SCHEMA``, quarantining what cannot be used, with a reason.

Input: a frame of strings with the canonical event columns (``features.sources.read_raw`` or a
layout) plus any further original columns. Output (:class:`ValidationResult`):

- ``events``: the kept rows, typed as ``features.schema.EVENT_SCHEMA``;
- ``quarantine``: every rejected row with its original columns, its ``row`` number (0-based
  position in the input) and a ``reason`` (a ``features.schema.Reason`` value);
- ``report``: an :class:`IngestReport`; ``rows_in == kept + quarantined + duplicates`` is
  checked here and a violation raises :class:`AccountingError`.

Steps, all vectorised polars: exact duplicates (identical raw rows) are dropped and counted;
each column is parsed and the first failing check names the reason; optionally customers
above an events-per-day cap are quarantined as bots; returns and cancellations are applied
(subtracted from the customer's purchases of the item, latest first) or recorded as events.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import polars as pl

from features import ids
from features.report import AccountingError, IngestReport
from features.schema import EVENT_SCHEMA, REQUIRED_EVENT_COLUMNS, EventTypes, Reason
from features.time_bounds import FUTURE_TOLERANCE, MIN_TIMESTAMP
from features.timestamps import (
    TIMESTAMP_FORMATS,
    TimestampInfo,
    complete_timestamps,
    fast_timestamps,
    parse_timestamps,
)

_TS = pl.Datetime("us", "UTC")

# Reason codes, in the order the checks run; the first failing check wins.
_REASONS: tuple[Reason, ...] = tuple(Reason)
_CODE = {reason: i for i, reason in enumerate(_REASONS)}
_DUPLICATE = 255
"""Code of a row identical to an earlier one: counted, neither kept nor quarantined."""


@dataclass(frozen=True)
class ValidationConfig:
    """How raw events are checked. Defaults suit a shop export in the canonical layout."""

    event_types: EventTypes = field(default_factory=EventTypes)
    event_aliases: Mapping[str, str] = field(default_factory=dict)
    """Raw event names -> canonical ones (after trimming and lower-casing), e.g.
    ``{"addtocart": "add_to_cart", "transaction": "purchase"}``."""
    return_types: tuple[str, ...] = ("return",)
    cancellation_types: tuple[str, ...] = ("cancellation",)
    returns: Literal["apply", "record"] = "apply"
    """``apply``: subtract returned/cancelled quantities from the customer's purchases of the
    item (latest first); a purchase brought to zero and the return row itself go to the
    quarantine with reason ``return``/``cancellation``. ``record``: keep them as events."""
    positive_quantity_types: tuple[str, ...] = ("purchase",)
    """Event types whose quantity must be > 0 (else ``non_positive_quantity``)."""
    default_quantity: float = 1.0
    value_required_types: tuple[str, ...] = ()
    """Event types that need a numeric ``value`` (ratings); without one: ``unparseable_value``."""
    timestamp_formats: tuple[str, ...] = ()
    """Extra text formats tried before :data:`TIMESTAMP_FORMATS` (e.g. ``%m/%d/%Y %H:%M``)."""
    timezone: str = "UTC"
    """IANA time zone of naive text timestamps (epoch numbers and offsets are absolute)."""
    detect_date_order: bool = True
    """Without ``timestamp_formats``: read ``21-07-2015``-style dates in the day/month order
    the values show, refusing a file where it cannot be told
    (``features.timestamps.detect_date_order``)."""
    now: datetime | None = None
    """Reference for ``future_timestamp``; None = the wall clock at validation time."""
    future_tolerance: timedelta = FUTURE_TOLERANCE
    min_timestamp: datetime = MIN_TIMESTAMP
    max_events_per_day: int | None = None
    """Bot filter: a customer with more events than this on any UTC day is quarantined."""
    missing_customer_is_guest: bool = False
    """Report a missing customer id as ``guest_without_id`` (exports that log guests)."""
    drop_duplicates: bool = True

    @property
    def adjustment_types(self) -> tuple[str, ...]:
        return self.return_types + self.cancellation_types

    @property
    def known_event_types(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.event_types.all + self.adjustment_types))


@dataclass
class ValidationResult:
    events: pl.DataFrame
    quarantine: pl.DataFrame
    report: IngestReport


# --- checks --------------------------------------------------------------------------------


def duplicate_mask(raw: pl.DataFrame) -> pl.Series:
    """True for rows identical to an earlier row (all columns). Hash first, then exact.

    Sorting the 64-bit row hashes finds the few hash values seen twice; only rows carrying
    those are compared exactly, so a hash collision never drops a row. A column that is null
    throughout (one a layout adds) is the same in every row, so it is left out.
    """
    varying = [c for c in raw.columns if not _all_null(raw, c)]
    raw = raw.select(varying or raw.columns[:1])
    hashes = raw.hash_rows()
    ordered = hashes.to_numpy(writable=True)  # a copy, sorted in place
    ordered.sort()
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    mask = pl.repeat(False, raw.height, eager=True).alias("duplicate")
    if repeated.size == 0:
        return mask
    idx = hashes.is_in(pl.Series(np.unique(repeated)).implode()).arg_true()
    exact_first = raw[idx].select(pl.struct(pl.all()).is_first_distinct()).to_series()
    return mask.scatter(idx.filter(~exact_first), True)


def _event_mapping(raw: pl.Series, config: ValidationConfig) -> dict[str, str | None]:
    """Raw event names -> canonical names (None = unknown). Python sees distinct values only."""
    known = set(config.known_event_types)
    aliases = {k.strip().lower(): v for k, v in config.event_aliases.items()}
    mapping: dict[str, str | None] = {}
    for value in raw.unique().to_list():
        if value is None:
            continue
        name = value.strip().lower()
        name = aliases.get(name, name)
        mapping[value] = name if name in known else None
    return mapping


def _number(col: str) -> tuple[pl.Expr, pl.Expr]:
    """(parsed Float64 or null, raw present but not a finite number)."""
    raw = pl.col(col).str.strip_chars()
    parsed = raw.cast(pl.Float64, strict=False)
    bad = raw.is_not_null() & (raw != "") & (parsed.is_null() | ~parsed.is_finite())
    return pl.when(bad).then(None).otherwise(parsed), bad


def _id_ok(values: pl.Series) -> pl.Series:
    """True where the id is valid as written under ``features.ids`` (False where null)."""
    ok = (values.str.len_chars() <= ids.MAX_ID_LENGTH) & values.str.contains(ids.ID_PATTERN)
    return ok.fill_null(False)


def _ids_ok(values: pl.Series) -> pl.Series:
    """:func:`_id_ok`, with a shortcut: an integer id (optional sign, digits) is valid, and
    the pattern runs only on the ids that are not integers."""
    ok = values.cast(pl.Int64, strict=False).is_not_null()
    rest = (~ok & values.is_not_null()).arg_true()
    if rest.len() == 0:
        return ok
    return ok.scatter(rest, _id_ok(values.gather(rest)))


def _clean_ids(frame: pl.DataFrame, col: str) -> pl.DataFrame:
    """Add ``_<col>`` (the id, stripped where needed) and ``_<col>_missing/_invalid``.

    Ids are checked against the id rule (``features.ids``) as written on the whole column;
    only the few that fail are stripped of surrounding whitespace and checked again (so a
    clean column is never copied, and a padded field keeps its row under the stripped id).
    """
    name = "_" + col.removesuffix("_id")
    values = frame[col]
    ok = _ids_ok(values)
    retry = (~ok & values.is_not_null()).arg_true()
    if retry.len():
        stripped = values.gather(retry).str.strip_chars()
        values = values.clone().scatter(retry, stripped)
        ok = ok.scatter(retry, _id_ok(stripped))
    missing = values.is_null() | (values.str.len_bytes() == 0)
    return frame.with_columns(
        values.alias(name),
        missing.alias(f"{name}_missing"),
        (~missing & ~ok).alias(f"{name}_invalid"),
    )


def _reason_codes(frame: pl.DataFrame, checks: Sequence[tuple[Reason, pl.Expr]]) -> pl.Series:
    """The code of the first failing check per row (null when all pass).

    One cheap pass finds the rows failing any check; the ordered when/then chain that names
    the reason runs on those rows only.
    """
    failing = frame.select(pl.any_horizontal([failed for _, failed in checks]).fill_null(False))
    idx = failing.to_series().arg_true()
    codes = pl.repeat(None, frame.height, dtype=pl.UInt8, eager=True).alias("_code")
    if idx.len() == 0:
        return codes
    (first, first_failed), *rest = checks
    chain: Any = pl.when(first_failed).then(pl.lit(_CODE[first], pl.UInt8))
    for reason, failed in rest:
        chain = chain.when(failed).then(pl.lit(_CODE[reason], pl.UInt8))
    named_expr = chain.otherwise(pl.lit(None, pl.UInt8))
    needed = named_expr.meta.root_names()  # gather only the columns the checks read
    named = frame.select(list(dict.fromkeys(needed)))[idx].select(named_expr).to_series()
    return codes.scatter(idx, named)


def _with_row_and_columns(raw: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in REQUIRED_EVENT_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(
            f"events lack required column(s) {missing}; columns are {raw.columns}. "
            "Map them with a column mapping (raw_column=canonical_column) or pick a layout."
        )
    not_str = [c for c, t in raw.schema.items() if t != pl.String]
    if not_str:
        raw = raw.with_columns(pl.col(not_str).cast(pl.String))
    return raw


def _strip(col: str) -> pl.Expr:
    return pl.col(col).str.strip_chars()


def _parse(
    frame: pl.DataFrame, config: ValidationConfig, now: datetime
) -> tuple[pl.DataFrame, set[str], TimestampInfo]:
    """Add parsed columns (prefixed ``_``) and the reason code ``_code``; also returns the
    canonical event types present and how the timestamps were read.

    Checks that cannot fail are skipped: a column the source does not fill (all null, e.g.
    price in RetailRocket) is not parsed.
    """
    empty = {c for c in ("quantity", "price", "value", "channel") if _all_null(frame, c)}
    mapping = _event_mapping(frame["event_type"], config)
    present = {name for name in mapping.values() if name is not None}
    adjustments = [t for t in config.adjustment_types if t in present]
    value_required = [t for t in config.value_required_types if t in present]
    positive_quantity = [t for t in config.positive_quantity_types if t in present]

    raw_timestamps = frame["timestamp"]
    timestamps, timestamp_info = complete_timestamps(
        fast_timestamps(raw_timestamps),
        raw_timestamps,
        config.timestamp_formats,
        timezone=config.timezone,
        detect=config.detect_date_order,
    )
    frame = frame.with_columns(
        _event=_map_values("event_type", mapping),
        _timestamp=timestamps.alias("_timestamp"),
        _channel=pl.lit(None, pl.String)
        if "channel" in empty
        else _strip("channel").str.to_lowercase(),
    )
    frame = _clean_ids(frame, "customer_id")
    frame = _clean_ids(frame, "item_id")
    event = pl.col("_event")
    ts = pl.col("_timestamp")
    checks: list[tuple[Reason, pl.Expr]] = [
        (
            Reason.GUEST if config.missing_customer_is_guest else Reason.MISSING_CUSTOMER_ID,
            pl.col("_customer_missing"),
        ),
        (Reason.MISSING_ITEM_ID, pl.col("_item_missing")),
        (Reason.INVALID_ID, pl.col("_customer_invalid") | pl.col("_item_invalid")),
        (Reason.MISSING_EVENT_TYPE, _blank("event_type")),
        (Reason.UNKNOWN_EVENT_TYPE, event.is_null()),
        (Reason.MISSING_TIMESTAMP, _blank("timestamp")),
        (Reason.BAD_TIMESTAMP, ts.is_null()),
        (Reason.FUTURE_TIMESTAMP, ts > pl.lit(now + config.future_tolerance, _TS)),
        (Reason.OLD_TIMESTAMP, ts < pl.lit(config.min_timestamp, _TS)),
    ]
    numbers: dict[str, pl.Expr] = {}
    for col in ("quantity", "price", "value"):
        if col in empty:
            numbers[f"_{col}"] = pl.lit(None, pl.Float64)
        else:
            parsed, bad = _number(col)
            numbers[f"_{col}"], numbers[f"_bad_{col}"] = parsed, bad
    if adjustments and "quantity" not in empty:
        numbers["_quantity"] = (
            pl.when(event.is_in(adjustments)).then(numbers["_quantity"].abs())
        ).otherwise(numbers["_quantity"])
    numbers["_quantity"] = numbers["_quantity"].fill_null(config.default_quantity)
    frame = frame.with_columns(**numbers)
    if "quantity" not in empty:
        checks.append((Reason.BAD_QUANTITY, pl.col("_bad_quantity")))
    if positive_quantity and ("quantity" not in empty or config.default_quantity <= 0):
        checks.append(
            (
                Reason.NON_POSITIVE_QUANTITY,
                event.is_in(positive_quantity) & (pl.col("_quantity") <= 0),
            )
        )
    if "price" not in empty:
        checks.append((Reason.BAD_PRICE, pl.col("_bad_price")))
        checks.append((Reason.NEGATIVE_PRICE, pl.col("_price") < 0))
    bad_value = [pl.col("_bad_value")] if "value" not in empty else []
    if value_required:
        bad_value.append(event.is_in(value_required) & pl.col("_value").is_null())
    if bad_value:
        checks.append((Reason.BAD_VALUE, pl.any_horizontal(bad_value)))
    helpers = [
        c for c in frame.columns if c.startswith("_bad_") or c.endswith(("_missing", "_invalid"))
    ]
    return frame.with_columns(_reason_codes(frame, checks)).drop(helpers), present, timestamp_info


def _map_values(col: str, mapping: Mapping[str, str | None]) -> pl.Expr:
    """Map a string column through ``mapping`` (unmapped or None -> null).

    A handful of values (event names) compare faster as a when/then chain than as a hash
    lookup; many values use ``replace_strict``.
    """
    pairs = [(raw, name) for raw, name in mapping.items() if name is not None]
    if not pairs or len(pairs) > 16:
        return pl.col(col).replace_strict(mapping, default=None, return_dtype=pl.String)
    (raw, name), *rest = pairs
    chain: Any = pl.when(pl.col(col) == raw).then(pl.lit(name))
    for raw, name in rest:
        chain = chain.when(pl.col(col) == raw).then(pl.lit(name))
    return chain.otherwise(pl.lit(None, pl.String))


def _all_null(frame: pl.DataFrame, col: str) -> bool:
    return frame[col].null_count() == frame.height


def _blank(col: str) -> pl.Expr:
    return pl.col(col).is_null() | (pl.col(col).str.len_bytes() == 0)


def _flag_unknown_items(frame: pl.DataFrame, catalog_items: Collection[str]) -> pl.DataFrame:
    items = (
        catalog_items.cast(pl.String)
        if isinstance(catalog_items, pl.Series)
        else pl.Series("items", list(catalog_items), dtype=pl.String)
    )
    unknown = pl.col("_code").is_null() & ~pl.col("_item").is_in(items.implode())
    return frame.with_columns(
        _code=pl.when(unknown).then(pl.lit(_CODE[Reason.UNKNOWN_ITEM], pl.UInt8)).otherwise("_code")
    )


def _flag_bots(frame: pl.DataFrame, cap: int) -> tuple[pl.DataFrame, int]:
    valid = frame.select("_customer", "_timestamp", "_code").filter(pl.col("_code").is_null())
    per_day = valid.group_by("_customer", pl.col("_timestamp").dt.date()).len()
    bots = per_day.filter(pl.col("len") > cap)["_customer"].unique()
    if bots.len() == 0:
        return frame, 0
    is_bot = pl.col("_code").is_null() & pl.col("_customer").is_in(bots.implode())
    frame = frame.with_columns(
        _code=pl.when(is_bot).then(pl.lit(_CODE[Reason.BOT], pl.UInt8)).otherwise("_code")
    )
    return frame, bots.len()


def _apply_adjustments(frame: pl.DataFrame, config: ValidationConfig) -> tuple[pl.DataFrame, dict]:
    """Subtract valid returns/cancellations from purchases of the same customer and item."""
    code_return, code_cancel = _CODE[Reason.RETURN], _CODE[Reason.CANCELLATION]
    valid = pl.col("_code").is_null()
    is_return = valid & pl.col("_event").is_in(list(config.return_types))
    is_cancel = valid & pl.col("_event").is_in(list(config.cancellation_types))
    frame = frame.with_columns(
        _code=pl.when(is_return)
        .then(pl.lit(code_return, pl.UInt8))
        .when(is_cancel)
        .then(pl.lit(code_cancel, pl.UInt8))
        .otherwise("_code")
    )
    adjusted = frame.select("_customer", "_item", "_quantity", "_code").filter(
        pl.col("_code").is_in([code_return, code_cancel])
    )
    stats = {
        "returns": int((adjusted["_code"] == code_return).sum()),
        "cancellations": int((adjusted["_code"] == code_cancel).sum()),
        "purchases_reduced": 0,
        "purchases_removed": 0,
        "quantity_subtracted": 0.0,
        "quantity_unmatched": 0.0,
    }
    if adjusted.height == 0:
        return frame, stats
    owed = adjusted.group_by("_customer", "_item").agg(
        _owed=pl.col("_quantity").sum(),
        _kind=pl.when(
            (pl.col("_code") == code_cancel).sum() > (pl.col("_code") == code_return).sum()
        )
        .then(pl.lit(code_cancel, pl.UInt8))
        .otherwise(pl.lit(code_return, pl.UInt8)),
    )
    purchases = (
        frame.select("row", "_customer", "_item", "_timestamp", "_quantity", "_code", "_event")
        .filter(pl.col("_code").is_null() & (pl.col("_event") == "purchase"))
        .join(owed, on=["_customer", "_item"], how="inner")
        .sort("_timestamp", "row", descending=True)
        .with_columns(
            _before=pl.col("_quantity").cum_sum().over("_customer", "_item") - pl.col("_quantity")
        )
        .with_columns(
            _take=(pl.col("_owed") - pl.col("_before"))
            .clip(0.0, None)
            .clip(None, pl.col("_quantity"))
        )
        .filter(pl.col("_take") > 0)
        .select(
            "row",
            _new_quantity=pl.col("_quantity") - pl.col("_take"),
            _new_code=pl.when(pl.col("_quantity") - pl.col("_take") <= 0).then("_kind"),
            _take="_take",
        )
    )
    subtracted = float(purchases["_take"].sum())
    stats["quantity_subtracted"] = subtracted
    stats["quantity_unmatched"] = float(owed["_owed"].sum()) - subtracted
    stats["purchases_removed"] = int(purchases["_new_code"].is_not_null().sum())
    stats["purchases_reduced"] = purchases.height - stats["purchases_removed"]
    # frame rows are input positions, so "row" indexes the columns directly
    rows = purchases["row"]
    removed = purchases.filter(pl.col("_new_code").is_not_null())
    frame = frame.with_columns(
        frame["_quantity"].clone().scatter(rows, purchases["_new_quantity"]),
        frame["_code"].clone().scatter(removed["row"], removed["_new_code"]),
    )
    return frame, stats


# --- entry point ---------------------------------------------------------------------------


def validate(
    raw: pl.DataFrame,
    config: ValidationConfig | None = None,
    catalog_items: Collection[str] | pl.Series | None = None,
) -> ValidationResult:
    """Validate raw string events; see the module docstring for the steps and outputs."""
    config = config or ValidationConfig()
    now = config.now or datetime.now(UTC)
    timings: dict[str, float] = {}
    start = clock = time.perf_counter()

    raw = _with_row_and_columns(raw)
    # extra columns named like our working columns ("row", "reason", "_...") are carried
    # under a safe name and given back in the quarantine (as "source_<name>" if clashing)
    safe = {c: f"~{c}" for c in raw.columns if c in ("row", "reason") or c.startswith("_")}
    raw = raw.rename(safe)
    original = raw.columns
    shown = {f"~{c}": (f"source_{c}" if c in ("row", "reason") else c) for c in safe}
    rows_in = raw.height
    for col in EVENT_SCHEMA:
        if col not in raw.columns:
            raw = raw.with_columns(pl.lit(None, pl.String).alias(col))

    # The duplicate search (hashing + a numpy sort) runs beside the parsing.
    with ThreadPoolExecutor(1) as pool:
        found = (
            pool.submit(_timed, duplicate_mask, raw.select(original))
            if config.drop_duplicates and rows_in
            else None
        )
        frame, present, timestamp_info = _parse(raw.with_row_index("row"), config, now)
        timings["parse"] = time.perf_counter() - clock
        duplicates = 0
        if found is not None:
            dup, timings["duplicates"] = found.result()
            duplicates = int(dup.sum())
            if duplicates:
                frame = frame.with_columns(
                    _code=pl.when(dup).then(pl.lit(_DUPLICATE, pl.UInt8)).otherwise("_code")
                )
    clock = time.perf_counter()

    if catalog_items is not None:
        frame = _flag_unknown_items(frame, catalog_items)
    bots = 0
    if config.max_events_per_day is not None:
        frame, bots = _flag_bots(frame, config.max_events_per_day)
    adjustments: dict = {}
    if config.returns == "apply" and present.intersection(config.adjustment_types):
        frame, adjustments = _apply_adjustments(frame, config)
    timings["checks"] = time.perf_counter() - clock
    clock = time.perf_counter()

    # select the needed columns first so the filters copy only those
    code = pl.col("_code")
    events = frame.select(
        customer_id="_customer",
        item_id="_item",
        event_type="_event",
        timestamp="_timestamp",
        quantity="_quantity",
        price="_price",
        channel="_channel",
        session_id=pl.col("session_id"),
        value="_value",
    ).filter(frame["_code"].is_null())
    if dict(events.schema) != EVENT_SCHEMA:
        events = events.cast(EVENT_SCHEMA)  # type: ignore[arg-type]
    labels = pl.Series([r.value for r in _REASONS], dtype=pl.String)
    rejected = frame.select((code.is_not_null() & (code != _DUPLICATE)).arg_true()).to_series()
    quarantine = frame.select(*original, "row", "_code")[rejected].select(
        *[pl.col(c).alias(shown.get(c, c)) for c in original],
        "row",
        reason=code.replace_strict(list(range(len(_REASONS))), labels, return_dtype=pl.String),
    )
    del frame
    timings["split"] = time.perf_counter() - clock
    clock = time.perf_counter()

    by_reason = _counts(quarantine["reason"])
    stats = events.select(first=pl.col("timestamp").min(), last=pl.col("timestamp").max()).row(
        0, named=True
    )
    by_event_type = _counts(events["event_type"])
    report = IngestReport(
        rows_in=rows_in,
        kept=events.height,
        quarantined=quarantine.height,
        duplicates=duplicates,
        by_reason=by_reason,
        by_event_type=by_event_type,
        customers=_distinct_count(events["customer_id"]),
        items=_distinct_count(events["item_id"]),
        first_event=_iso(stats["first"]),
        last_event=_iso(stats["last"]),
        bot_customers=bots,
        adjustments=adjustments,
        timestamps=timestamp_info.to_dict(),
        timings=timings,
    )
    timings["report"] = time.perf_counter() - clock
    timings["total"] = time.perf_counter() - start
    report.check()
    return ValidationResult(events=events, quarantine=quarantine, report=report)


def _timed(function: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    return function(*args), time.perf_counter() - start


def _distinct_count(values: pl.Series) -> int:
    """Distinct values, counted by their 64-bit hashes (sorted in place: cheaper than a
    hash set over millions of rows)."""
    hashes = values.hash(0).to_numpy(writable=True)
    if hashes.size == 0:
        return 0
    hashes.sort()
    return 1 + int(np.count_nonzero(hashes[1:] != hashes[:-1]))


def _counts(values: pl.Series) -> dict[str, int]:
    """Value counts, largest first (ties by name)."""
    counts = {str(v): int(n) for v, n in values.to_frame("v").group_by("v").len().iter_rows() if n}
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _iso(value: object) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


__all__ = [
    "AccountingError",
    "IngestReport",
    "TIMESTAMP_FORMATS",
    "TimestampInfo",
    "ValidationConfig",
    "ValidationResult",
    "parse_timestamps",
    "validate",
]
