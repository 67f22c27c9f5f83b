"""Ingestion: read a source with a layout, validate it, write events, quarantine and report.

``ingest(path, layout=..., out_dir=DIR)`` writes into DIR:

- ``events.parquet``     validated events (``features.schema.EVENT_SCHEMA``)
- ``quarantine.parquet`` rejected rows: original columns + ``row`` + ``reason``
- ``report.json``        the :class:`features.report.IngestReport`
- ``catalog.parquet`` / ``customers.parquet`` when a catalog / customers file is given,
  so ``recsys build DIR`` finds them for item and customer features.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from features.layouts import get_layout
from features.schema import CATALOG_SCHEMA, CATEGORY_SEPARATOR, CUSTOMER_SCHEMA
from features.sources import SourceError, read_raw
from features.validate import ValidationConfig, ValidationResult, parse_timestamps, validate

EVENTS_FILE = "events.parquet"
QUARANTINE_FILE = "quarantine.parquet"
REPORT_FILE = "report.json"
CATALOG_FILE = "catalog.parquet"
CUSTOMERS_FILE = "customers.parquet"

_TRUE = ["true", "t", "yes", "y", "1", "in_stock", "instock"]
_FALSE = ["false", "f", "no", "n", "0", "out_of_stock", "outofstock"]


def load_catalog(
    path: str | Path | pl.DataFrame, mapping: Mapping[str, str] | None = None
) -> pl.DataFrame:
    """A catalog file (or raw frame) -> ``CATALOG_SCHEMA`` columns + attribute columns.

    Missing catalog columns are null; further columns are kept as string attributes. Rows
    without an item id are dropped; a repeated item id keeps its last row (latest export).
    A category path written with ``/`` or ``|`` is normalised to ``" > "`` joins.
    """
    raw = path if isinstance(path, pl.DataFrame) else read_raw(path, mapping=mapping)
    if "item_id" not in raw.columns:
        raise SourceError(
            f"catalog lacks an item_id column (columns: {raw.columns}); pass a mapping"
        )
    raw = raw.with_columns(pl.col(c).cast(pl.String) for c in raw.columns)
    for col in CATALOG_SCHEMA:
        if col not in raw.columns:
            raw = raw.with_columns(pl.lit(None, pl.String).alias(col))
    stock = pl.col("in_stock").str.strip_chars().str.to_lowercase()
    category = pl.col("category").str.strip_chars()
    catalog = raw.with_columns(
        item_id=pl.col("item_id").str.strip_chars(),
        title=pl.col("title").str.strip_chars(),
        category=category.str.replace_all(r"\s*[/|>]\s*", CATEGORY_SEPARATOR),
        price=pl.col("price").str.strip_chars().cast(pl.Float64, strict=False),
        in_stock=pl.when(stock.is_in(_TRUE))
        .then(True)
        .when(stock.is_in(_FALSE))
        .then(False)
        .otherwise(None),
        created_at=parse_timestamps(raw["created_at"]),
    )
    attributes = [c for c in catalog.columns if c not in CATALOG_SCHEMA]
    catalog = catalog.filter(pl.col("item_id").is_not_null() & (pl.col("item_id") != ""))
    catalog = catalog.unique("item_id", keep="last", maintain_order=True)
    return catalog.select(*CATALOG_SCHEMA, *attributes)


def load_customers(
    path: str | Path | pl.DataFrame, mapping: Mapping[str, str] | None = None
) -> pl.DataFrame:
    """A customers file -> ``customer_id`` + string attribute columns (one row per id)."""
    raw = path if isinstance(path, pl.DataFrame) else read_raw(path, mapping=mapping)
    if "customer_id" not in raw.columns:
        raise SourceError(
            f"customers file lacks a customer_id column (columns: {raw.columns}); pass a mapping"
        )
    customers = raw.with_columns(pl.col(c).cast(pl.String) for c in raw.columns)
    customers = customers.with_columns(pl.col(c).str.strip_chars() for c in CUSTOMER_SCHEMA)
    customers = customers.filter(
        pl.col("customer_id").is_not_null() & (pl.col("customer_id") != "")
    )
    customers = customers.unique("customer_id", keep="last", maintain_order=True)
    return customers.select("customer_id", *[c for c in customers.columns if c != "customer_id"])


def write_result(result: ValidationResult, out_dir: str | Path) -> dict[str, Path]:
    """Write events, quarantine and report into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "events": out / EVENTS_FILE,
        "quarantine": out / QUARANTINE_FILE,
        "report": out / REPORT_FILE,
    }
    result.events.write_parquet(paths["events"])
    result.quarantine.write_parquet(paths["quarantine"])
    result.report.to_json(paths["report"])
    return paths


def ingest(
    path: str | Path,
    *,
    layout: str = "canonical",
    mapping: Mapping[str, str] | None = None,
    config: ValidationConfig | None = None,
    catalog: str | Path | pl.DataFrame | None = None,
    customers: str | Path | pl.DataFrame | None = None,
    out_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    **layout_options: Any,
) -> ValidationResult:
    """Read ``path`` with ``layout``, validate, and (with ``out_dir``) write the results.

    ``mapping`` renames raw columns (``{"visitorid": "customer_id"}``) before the layout
    applies; ``catalog`` (a file or a frame from :func:`load_catalog`) makes items missing
    from it ``unknown_item``; ``layout_options`` go to the layout's reader (for example
    ``rating_threshold`` for MovieLens). ``progress`` is called with each stage's name as it
    starts ("read", "validate", "write").
    """
    step = progress or (lambda stage: None)
    chosen = get_layout(layout)
    step("read")
    start = time.perf_counter()
    raw = chosen.read(path, mapping=mapping, **layout_options)
    read_seconds = time.perf_counter() - start
    step("validate")

    catalog_frame = None
    if catalog is not None:
        catalog_frame = catalog if isinstance(catalog, pl.DataFrame) else load_catalog(catalog)
    customer_frame = None
    if customers is not None:
        customer_frame = (
            customers if isinstance(customers, pl.DataFrame) else load_customers(customers)
        )
    result = validate(
        raw,
        chosen.config(config),
        catalog_items=None if catalog_frame is None else catalog_frame["item_id"],
    )
    # exports carrying item/customer details inline (UCI) yield them when none is given;
    # a derived catalog never makes items unknown
    if catalog_frame is None and chosen.derive_catalog is not None:
        catalog_frame = load_catalog(chosen.derive_catalog(raw))
    if customer_frame is None and chosen.derive_customers is not None:
        customer_frame = load_customers(chosen.derive_customers(raw))
    result.report.source = str(path)
    result.report.layout = layout
    result.report.timings = {"read": read_seconds, **result.report.timings}

    if out_dir is not None:
        step("write")
        start = time.perf_counter()
        write_result(result, out_dir)
        if catalog_frame is not None:
            catalog_frame.write_parquet(Path(out_dir) / CATALOG_FILE)
        if customer_frame is not None:
            customer_frame.write_parquet(Path(out_dir) / CUSTOMERS_FILE)
        result.report.timings["write"] = time.perf_counter() - start
        result.report.to_json(Path(out_dir) / REPORT_FILE)
    return result
