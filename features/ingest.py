"""Ingestion: read a source with a layout, validate it, write events, quarantine and report.

``ingest(path, layout=..., out_dir=DIR)`` writes into DIR:

- ``events.parquet``     validated events (``features.schema.EVENT_SCHEMA``)
- ``quarantine.parquet`` rejected rows: original columns + ``row`` + ``reason``
- ``report.json``        the :class:`features.report.IngestReport`
- ``catalog.parquet`` / ``customers.parquet`` when a catalog / customers file is given,
  so ``recsys build DIR`` finds them for item and customer features;
- ``source.json``        the source options used (``features.source_options``), so the
  ingest can be repeated and ``recsys build`` finds the declared event types' weights.

:func:`dry_run` reads and validates the same way and writes nothing: it returns the first
rows as the validator read them, with what became of each, and one example per reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from features.layouts import get_layout
from features.schema import CATALOG_SCHEMA, CATEGORY_SEPARATOR, CUSTOMER_SCHEMA, RAW_EVENT_COLUMNS
from features.source_options import SourceOptions, write_source_file
from features.sources import SourceError, read_raw
from features.validate import (
    ValidationConfig,
    ValidationResult,
    duplicate_mask,
    parse_timestamps,
    validate,
)

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


@dataclass
class _Run:
    raw: pl.DataFrame
    result: ValidationResult
    catalog: pl.DataFrame | None
    customers: pl.DataFrame | None


def _options(
    source: SourceOptions | None,
    layout: str | None,
    mapping: Mapping[str, str] | None,
    layout_options: Mapping[str, Any],
) -> SourceOptions:
    if source is None:
        return SourceOptions.from_dict(
            {"layout": layout or "canonical", "mapping": dict(mapping or {}), **layout_options}
        )
    if layout is not None or mapping is not None or layout_options:
        raise TypeError("pass either source=SourceOptions(...) or layout/mapping/options")
    return source


def _run(
    path: str | Path,
    options: SourceOptions,
    config: ValidationConfig | None,
    catalog: str | Path | pl.DataFrame | None,
    customers: str | Path | pl.DataFrame | None,
    step: Callable[[str], None],
) -> _Run:
    """Read ``path`` as ``options`` say and validate it (the part ingest and dry_run share)."""
    chosen = get_layout(options.layout)
    step("read")
    start = time.perf_counter()
    raw = chosen.read(path, mapping=options.mapping, **options.layout_options)
    raw = options.apply_constants(raw)
    read_seconds = time.perf_counter() - start
    step("validate")

    catalog = catalog if catalog is not None else options.catalog
    customers = customers if customers is not None else options.customers
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
        chosen.config(options.validation_config(config)),
        catalog_items=None if catalog_frame is None else catalog_frame["item_id"],
    )
    # exports carrying item/customer details inline (UCI) yield them when none is given;
    # a derived catalog never makes items unknown
    if catalog_frame is None and chosen.derive_catalog is not None:
        catalog_frame = load_catalog(chosen.derive_catalog(raw))
    if customer_frame is None and chosen.derive_customers is not None:
        customer_frame = load_customers(chosen.derive_customers(raw))
    result.report.source = str(path)
    result.report.layout = options.layout
    result.report.options = options.to_dict()
    result.report.timings = {"read": read_seconds, **result.report.timings}
    return _Run(raw, result, catalog_frame, customer_frame)


def ingest(
    path: str | Path,
    source: SourceOptions | None = None,
    *,
    layout: str | None = None,
    mapping: Mapping[str, str] | None = None,
    config: ValidationConfig | None = None,
    catalog: str | Path | pl.DataFrame | None = None,
    customers: str | Path | pl.DataFrame | None = None,
    out_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    **layout_options: Any,
) -> ValidationResult:
    """Read ``path`` as ``source`` says, validate, and (with ``out_dir``) write the results.

    ``source`` holds every option about the export (layout, column mapping, constant
    columns, timestamp format and time zone, event aliases and types, catalog, customers);
    the shorthand ``layout=`` / ``mapping=`` / layout options (``rating_threshold``) builds
    one. ``catalog`` / ``customers`` (files or frames from :func:`load_catalog`) override the
    options' files; items missing from a catalog are ``unknown_item``. ``progress`` is called
    with each stage's name as it starts ("read", "validate", "write").
    """
    options = _options(source, layout, mapping, layout_options)
    step = progress or (lambda stage: None)
    run = _run(path, options, config, catalog, customers, step)
    result = run.result
    if out_dir is not None:
        step("write")
        start = time.perf_counter()
        write_result(result, out_dir)
        if run.catalog is not None:
            run.catalog.write_parquet(Path(out_dir) / CATALOG_FILE)
        if run.customers is not None:
            run.customers.write_parquet(Path(out_dir) / CUSTOMERS_FILE)
        write_source_file(options, out_dir, source=str(path))
        result.report.timings["write"] = time.perf_counter() - start
        result.report.to_json(Path(out_dir) / REPORT_FILE)
    return result


@dataclass
class DryRun:
    """What an ingest would do, without writing anything."""

    head: pl.DataFrame
    """The first rows: ``row``, the canonical columns as read (strings), ``parsed_timestamp``
    (UTC, for kept rows) and ``outcome`` (``kept``, ``duplicate`` or the quarantine reason)."""
    examples: pl.DataFrame
    """Per quarantine reason: ``reason``, ``rows`` and ``example`` (one row, as text)."""
    result: ValidationResult


def dry_run(
    path: str | Path,
    source: SourceOptions | None = None,
    *,
    config: ValidationConfig | None = None,
    rows: int = 10,
    progress: Callable[[str], None] | None = None,
) -> DryRun:
    """Read and validate ``path`` like :func:`ingest`; write nothing."""
    run = _run(path, source or SourceOptions(), config, None, None, progress or (lambda s: None))
    result = run.result
    # validation's own rule (and none when validation dropped none, e.g. drop_duplicates off)
    head_rows = min(rows, run.raw.height)
    duplicate = (
        duplicate_mask(run.raw).head(rows)
        if result.report.duplicates
        else pl.repeat(False, head_rows, eager=True)
    )
    head = run.raw.head(rows).with_row_index("row").with_columns(_duplicate=duplicate)
    reasons = result.quarantine.filter(pl.col("row") < rows).select(
        pl.col("row").cast(pl.UInt32), "reason"
    )
    head = head.join(reasons, on="row", how="left").with_columns(
        outcome=pl.when(pl.col("reason").is_not_null())
        .then("reason")
        .when(pl.col("_duplicate"))
        .then(pl.lit("duplicate"))
        .otherwise(pl.lit("kept"))
    )
    kept = head.filter(pl.col("outcome") == "kept")["row"]
    # events keep the input order, so the k-th kept row of the head is the k-th event
    parsed = pl.DataFrame(
        {"row": kept, "parsed_timestamp": result.events["timestamp"].head(kept.len())}
    )
    canonical = [c for c in RAW_EVENT_COLUMNS if c in head.columns]
    head = head.join(parsed, on="row", how="left").select(
        "row", *canonical, "parsed_timestamp", "outcome"
    )
    grouped = (
        result.quarantine.group_by("reason", maintain_order=True)
        .agg(rows=pl.len(), example=pl.struct(pl.exclude("reason")).first())
        .sort("rows", "reason", descending=[True, False])
    )
    examples = pl.DataFrame(
        {
            "reason": grouped["reason"],
            "rows": grouped["rows"],
            "example": [_row_text(row) for row in grouped["example"].to_list()],
        },
        schema={"reason": pl.String, "rows": pl.UInt32, "example": pl.String},
    )
    return DryRun(head=head.sort("row"), examples=examples, result=result)


def _row_text(row: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in row.items() if v is not None)
