"""Built-in layouts: known shop/dataset exports turned into canonical raw event columns.

A :class:`Layout` reads a file (or folder) into a frame of *strings* named like
``features.schema.RAW_EVENT_COLUMNS`` (plus any original columns worth keeping in the
quarantine) and says how validation should read it (event name aliases, timestamp formats,
guests). Values stay as the export wrote them wherever possible; validation does the parsing.

- ``canonical``: our own columns (``read_raw`` with an optional column mapping).
- ``retailrocket``: ``events.csv`` -- timestamp (epoch ms), visitorid, event
  (view / addtocart / transaction), itemid, transactionid. ``transaction`` is a purchase;
  ``transactionid`` becomes the session id.
- ``uci_online_retail``: invoice lines -- InvoiceNo (``C`` prefix = cancellation), StockCode
  (the item), Description, Quantity (negative = return), InvoiceDate (``12/1/2010 8:26``),
  UnitPrice, CustomerID (missing = guest, often written ``17850.0``), Country. The
  2009-2011 release's names (Invoice, Price, Customer ID) are accepted too. Without a
  catalog file, ingestion derives one (title, price) and a customers table (country) from
  the lines.
- ``movielens``: ``ratings.csv`` (userId,movieId,rating,timestamp), ``u.data`` (tab
  separated, no header) or ``ratings.dat`` (``::`` separated). A rating >= the threshold is
  ``rating_pos``, below it ``rating_neg``; the rating goes into ``value``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from features.schema import MOVIELENS_EVENT_TYPES, EventTypes
from features.sources import SourceError, apply_mapping, list_files, read_raw
from features.validate import ValidationConfig

DEFAULT_RATING_THRESHOLD = 4.0

Reader = Callable[..., pl.DataFrame]


@dataclass(frozen=True)
class Layout:
    """How to read one kind of export and how to validate what it yields."""

    name: str
    read: Reader
    """``read(path, mapping=None, **options) -> pl.DataFrame`` of strings."""
    event_aliases: Mapping[str, str] = field(default_factory=dict)
    extra_event_types: tuple[str, ...] = ()
    timestamp_formats: tuple[str, ...] = ()
    missing_customer_is_guest: bool = False
    value_required_types: tuple[str, ...] = ()
    derive_catalog: Callable[[pl.DataFrame], pl.DataFrame] | None = None
    """Raw frame -> catalog rows (strings), for exports that carry item details inline."""
    derive_customers: Callable[[pl.DataFrame], pl.DataFrame] | None = None

    def config(self, base: ValidationConfig | None = None) -> ValidationConfig:
        """``base`` (or the defaults) completed with what this layout needs."""
        base = base or ValidationConfig()
        event_types = base.event_types
        missing = tuple(t for t in self.extra_event_types if t not in event_types.all)
        if missing:
            event_types = EventTypes(event_types.names, event_types.extra + missing)
        return dataclasses.replace(
            base,
            event_types=event_types,
            event_aliases={**self.event_aliases, **base.event_aliases},
            timestamp_formats=base.timestamp_formats
            + tuple(f for f in self.timestamp_formats if f not in base.timestamp_formats),
            missing_customer_is_guest=base.missing_customer_is_guest
            or self.missing_customer_is_guest,
            value_required_types=tuple(
                dict.fromkeys(base.value_required_types + self.value_required_types)
            ),
        )


def _null(name: str) -> pl.Expr:
    return pl.lit(None, pl.String).alias(name)


def _require(frame: pl.DataFrame, columns: list[str], layout: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SourceError(
            f"{layout} layout expects column(s) {missing}; the file has {frame.columns}"
        )


# --- canonical -----------------------------------------------------------------------------


def read_canonical(path: str | Path, mapping: Mapping[str, str] | None = None) -> pl.DataFrame:
    return read_raw(path, mapping=mapping)


# --- RetailRocket --------------------------------------------------------------------------

RETAILROCKET_COLUMNS = ["timestamp", "visitorid", "event", "itemid", "transactionid"]


def read_retailrocket(path: str | Path, mapping: Mapping[str, str] | None = None) -> pl.DataFrame:
    """RetailRocket ``events.csv`` -> canonical raw columns.

    ``transactionid`` (the order of a ``transaction``) becomes the session id, as the invoice
    number does for UCI: it groups the items bought together.
    """
    raw = read_raw(path)
    raw = apply_mapping(raw, mapping)
    _require(raw, RETAILROCKET_COLUMNS[:4], "retailrocket")
    renamed = {"visitorid": "customer_id", "event": "event_type", "itemid": "item_id"}
    if "transactionid" in raw.columns:
        renamed["transactionid"] = "session_id"
    raw = raw.rename(renamed)
    missing = [c for c in ("quantity", "price", "channel", "session_id") if c not in raw.columns]
    return raw.with_columns(_null(c) for c in missing)


# --- UCI Online Retail ---------------------------------------------------------------------

_UCI_ALIASES = {"Invoice": "InvoiceNo", "Price": "UnitPrice", "Customer ID": "CustomerID"}
UCI_COLUMNS = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice"]
UCI_COLUMNS += ["CustomerID", "Country"]


def read_uci_online_retail(
    path: str | Path, mapping: Mapping[str, str] | None = None
) -> pl.DataFrame:
    """UCI Online Retail invoice lines -> canonical raw columns.

    Event type: ``cancellation`` for an InvoiceNo starting with ``C``, ``return`` for any
    other negative Quantity, else ``purchase``. The invoice number is the session id.
    Description and Country stay as extra columns (shown in the quarantine).
    """
    raw = read_raw(path, encoding="utf8-lossy")
    raw = raw.rename({k: v for k, v in _UCI_ALIASES.items() if k in raw.columns})
    raw = apply_mapping(raw, mapping)
    _require(raw, UCI_COLUMNS[:6] + ["CustomerID"], "uci_online_retail")
    invoice = pl.col("InvoiceNo").str.strip_chars()
    quantity = pl.col("Quantity").str.strip_chars()
    return raw.select(
        customer_id=pl.col("CustomerID").str.strip_chars().str.replace(r"\.0+$", ""),
        item_id=pl.col("StockCode"),
        event_type=pl.when(invoice.str.starts_with("C"))
        .then(pl.lit("cancellation"))
        .when(quantity.str.starts_with("-"))
        .then(pl.lit("return"))
        .otherwise(pl.lit("purchase")),
        timestamp=pl.col("InvoiceDate"),
        quantity=pl.col("Quantity"),
        price=pl.col("UnitPrice"),
        channel=pl.lit("web"),
        session_id=pl.col("InvoiceNo"),
        value=pl.lit(None, pl.String),
        description=pl.col("Description"),
        country=pl.col("Country") if "Country" in raw.columns else pl.lit(None, pl.String),
    )


def uci_catalog(raw: pl.DataFrame) -> pl.DataFrame:
    """Catalog rows from UCI invoice lines: per StockCode the most frequent Description as
    title and the median positive UnitPrice as price (strings, for ``load_catalog``)."""
    price = pl.col("price").str.strip_chars().cast(pl.Float64, strict=False)
    return (
        raw.filter(pl.col("item_id").is_not_null())
        .group_by("item_id")
        .agg(
            title=pl.col("description").drop_nulls().mode().sort().first(),
            price=price.filter(price > 0).median(),
        )
        .sort("item_id")
        .with_columns(pl.col("price").round(2).cast(pl.String))
    )


def uci_customers(raw: pl.DataFrame) -> pl.DataFrame:
    """Customer rows from UCI invoice lines: the country of each customer's last line."""
    return (
        raw.filter(pl.col("customer_id").is_not_null() & (pl.col("customer_id") != ""))
        .group_by("customer_id", maintain_order=True)
        .agg(country=pl.col("country").drop_nulls().last())
        .sort("customer_id")
    )


# --- MovieLens -----------------------------------------------------------------------------

MOVIELENS_COLUMNS = ["userId", "movieId", "rating", "timestamp"]


def _movielens_kind(file: Path) -> str:
    with file.open("rb") as handle:
        first = handle.readline().decode("utf-8", errors="replace")
    if "::" in first:
        return "dat"
    if "\t" in first:
        return "tab"
    return "csv"


def _read_movielens_file(file: Path) -> pl.DataFrame:
    kind = _movielens_kind(file)
    if kind == "dat":
        # "1::1193::5::978300760": read on ':' and keep every other field.
        frame = read_raw(file, fmt="csv", separator=":", has_header=False, quote_char=None)
        if frame.width < 7:
            raise SourceError(f"{file}: expected user::movie::rating::timestamp lines")
        frame = frame.select(frame.columns[0:7:2])
        return frame.rename(dict(zip(frame.columns, MOVIELENS_COLUMNS, strict=True)))
    if kind == "tab":
        frame = read_raw(file, fmt="csv", separator="\t", has_header=False, quote_char=None)
        if frame.width < 4:
            raise SourceError(f"{file}: expected user<TAB>item<TAB>rating<TAB>timestamp lines")
        frame = frame.select(frame.columns[:4])
        return frame.rename(dict(zip(frame.columns, MOVIELENS_COLUMNS, strict=True)))
    return read_raw(file, fmt="csv")


def read_movielens(
    path: str | Path,
    mapping: Mapping[str, str] | None = None,
    rating_threshold: float = DEFAULT_RATING_THRESHOLD,
) -> pl.DataFrame:
    """MovieLens ratings (csv, tab or ``::``) -> rating_pos / rating_neg events."""
    files = list_files(path)
    frames = [_read_movielens_file(f) for f in files]
    raw = frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal")
    raw = apply_mapping(raw, mapping)
    _require(raw, MOVIELENS_COLUMNS, "movielens")
    rating = pl.col("rating").str.strip_chars().cast(pl.Float64, strict=False)
    return raw.select(
        customer_id=pl.col("userId"),
        item_id=pl.col("movieId"),
        event_type=pl.when(rating >= rating_threshold)
        .then(pl.lit("rating_pos"))
        .when(rating < rating_threshold)
        .then(pl.lit("rating_neg"))
        .otherwise(pl.lit("rating")),  # unparseable rating: quarantined for its value
        timestamp=pl.col("timestamp"),
        quantity=pl.lit(None, pl.String),
        price=pl.lit(None, pl.String),
        channel=pl.lit(None, pl.String),
        session_id=pl.lit(None, pl.String),
        value=pl.col("rating"),
    )


# --- registry ------------------------------------------------------------------------------

LAYOUTS: dict[str, Layout] = {
    "canonical": Layout("canonical", read_canonical),
    "retailrocket": Layout(
        "retailrocket",
        read_retailrocket,
        event_aliases={"addtocart": "add_to_cart", "transaction": "purchase"},
    ),
    "uci_online_retail": Layout(
        "uci_online_retail",
        read_uci_online_retail,
        timestamp_formats=("%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S"),
        missing_customer_is_guest=True,
        derive_catalog=uci_catalog,
        derive_customers=uci_customers,
    ),
    "movielens": Layout(
        "movielens",
        read_movielens,
        extra_event_types=(*MOVIELENS_EVENT_TYPES, "rating"),
        value_required_types=(*MOVIELENS_EVENT_TYPES, "rating"),
    ),
}
"""The built-in layouts by name."""


def get_layout(name: str) -> Layout:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise SourceError(f"unknown layout {name!r}; choose one of {sorted(LAYOUTS)}") from None


def read_layout(
    path: str | Path,
    layout: str = "canonical",
    mapping: Mapping[str, str] | None = None,
    **options: Any,
) -> pl.DataFrame:
    """Read ``path`` with the named layout (options such as ``rating_threshold``)."""
    return get_layout(layout).read(path, mapping=mapping, **options)
