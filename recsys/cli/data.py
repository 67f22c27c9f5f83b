"""CLI commands for data: ``recsys synth``, ``recsys ingest``, ``recsys build``.

- ``synth``  writes a synthetic shop (events, catalog, customers) in a chosen layout;
- ``ingest`` reads an export with a layout, validates it and writes events.parquet,
  quarantine.parquet and report.json, then prints the report;
- ``build``  turns an ingest folder's events.parquet into interaction matrices (+ id maps,
  + feature matrices when catalog.parquet / customers.parquet are there).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from recsys.cli import app

if TYPE_CHECKING:
    from features.ingest import DryRun
    from features.report import IngestReport

console = Console()

SIZES = ["tiny", "grocery", "small", "demo", "bench", "large"]
SYNTH_LAYOUTS = ["canonical", "retailrocket"]
INGEST_LAYOUTS = ["canonical", "retailrocket", "uci_online_retail", "movielens"]


@contextlib.contextmanager
def stages(total: int, description: str) -> Iterator[Progress]:
    """A progress bar advanced once per stage; ``progress.update(0, description=...)``."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    with progress:
        progress.add_task(description, total=total)
        yield progress


def _step(progress: Progress, description: str) -> None:
    progress.update(progress.task_ids[0], description=description)


def _done(progress: Progress) -> None:
    progress.advance(progress.task_ids[0])


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=2)


def report_table(report: IngestReport) -> Table:
    """The ingest report as a rich table (label, value)."""
    title = "ingest report" + (f" ({report.layout})" if report.layout else "")
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    for label, value in report.rows():
        style = "red" if label == "accounted" and value != "yes" else None
        table.add_row(label, value, style=style)
    return table


def _kv_table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    for label, value in rows:
        table.add_row(label, value)
    return table


# --- synth ---------------------------------------------------------------------------------


@app.command()
def synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the shop into.")],
    size: Annotated[str, typer.Option(help=f"Preset: {', '.join(SIZES)}.")] = "tiny",
    layout: Annotated[str, typer.Option(help="canonical or retailrocket.")] = "canonical",
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    seed: Annotated[int | None, typer.Option(help="Random seed (default: the preset's).")] = None,
) -> None:
    """Write a synthetic shop (events, catalog, customers) with a small share of dirty rows."""
    import dataclasses

    from features.synth import SynthConfig, generate, write_shop

    if size not in SIZES:
        raise _fail(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    if layout not in SYNTH_LAYOUTS:
        raise _fail(f"unknown layout {layout!r}; choose one of {', '.join(SYNTH_LAYOUTS)}")
    if fmt not in ("csv", "parquet"):
        raise _fail(f"unknown format {fmt!r}; choose csv or parquet")
    config = SynthConfig.preset(size)
    if seed is not None:
        config = dataclasses.replace(config, seed=seed)
    with stages(2, f"generating {size} shop") as progress:
        shop = generate(config)
        _done(progress)
        _step(progress, f"writing {layout} {fmt}")
        files = write_shop(shop, out, layout=layout, fmt=fmt)  # type: ignore[arg-type]
        _done(progress)
    rows = [("events (clean)", f"{shop.events.height:,}")]
    if "manifest" in files:
        manifest = json.loads(Path(files["manifest"]).read_text())
        rows.append(("rows written", f"{manifest['rows']:,}"))
        rows.append(("dirty rows", f"{manifest['dirty_rows']:,} {manifest['dirty']}"))
    rows += [
        ("customers", f"{shop.customers.height:,}"),
        ("items", f"{shop.catalog.height:,}"),
        ("layout", layout),
    ]
    rows += [(f"file: {name}", str(path)) for name, path in files.items()]
    console.print(_kv_table(f"synthetic shop ({size})", rows))


# --- ingest --------------------------------------------------------------------------------


@app.command()
def ingest(
    path: Annotated[Path, typer.Argument(help="A CSV/Parquet file or a folder of them.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for the results.")] = None,
    layout: Annotated[str, typer.Option(help=f"One of {', '.join(INGEST_LAYOUTS)}.")] = (
        "canonical"
    ),
    mapping: Annotated[
        list[str] | None,
        typer.Option("--mapping", "-m", help="raw_column=canonical_column (repeatable)."),
    ] = None,
    constants: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="column=value: a constant column, e.g. event_type=purchase (repeatable)."
        ),
    ] = None,
    timestamp_format: Annotated[
        str | None,
        typer.Option(
            help="strftime format (polars/chrono), e.g. %d-%m-%Y, tried before ISO 8601; "
            "without it day-first/month-first dates are detected."
        ),
    ] = None,
    timezone: Annotated[
        str, typer.Option(help="IANA time zone of naive timestamps, e.g. Europe/London.")
    ] = "UTC",
    event_alias: Annotated[
        list[str] | None,
        typer.Option(help="raw_name=event_type, e.g. transaction=purchase (repeatable)."),
    ] = None,
    event_type: Annotated[
        list[str] | None,
        typer.Option(help="name=weight: accept an extra event type, e.g. wishlist=2.0."),
    ] = None,
    catalog: Annotated[
        Path | None, typer.Option(help="Catalog file: unknown items are quarantined.")
    ] = None,
    customers: Annotated[Path | None, typer.Option(help="Customers file (attributes).")] = None,
    returns: Annotated[str, typer.Option(help="apply or record returns/cancellations.")] = (
        "apply"
    ),
    max_events_per_day: Annotated[
        int | None, typer.Option(help="Bot filter: quarantine customers above this cap.")
    ] = None,
    rating_threshold: Annotated[
        float | None, typer.Option(help="MovieLens: ratings >= this are positive (4.0).")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Read and validate, show the first rows and reasons, write nothing."
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Read, validate and quarantine events; write events.parquet, quarantine, report.json."""
    from features.ingest import dry_run as run_dry
    from features.ingest import ingest as run_ingest
    from features.source_options import SourceOptions
    from features.sources import SourceError
    from features.validate import ValidationConfig

    if returns not in ("apply", "record"):
        raise _fail(f"--returns must be apply or record, not {returns!r}")
    if out is None and not dry_run:
        raise _fail("--out FOLDER is required (or pass --dry-run to write nothing)")
    try:
        options = SourceOptions.from_cli(
            layout=layout,
            mapping=mapping or (),
            constants=constants or (),
            timestamp_format=timestamp_format,
            timezone=timezone,
            event_aliases=event_alias or (),
            event_types=event_type or (),
            catalog=catalog,
            customers=customers,
            rating_threshold=rating_threshold,
        )
        config = ValidationConfig(returns=returns, max_events_per_day=max_events_per_day)  # type: ignore[arg-type]
        with stages(3 if out else 2, f"reading {path.name} ({layout})") as progress:
            labels = {
                "read": f"reading {path.name} ({layout})",
                "validate": "validating, deduplicating, quarantining",
                "write": f"writing {out}",
            }

            def advance(stage: str) -> None:
                if stage != "read":
                    _done(progress)
                _step(progress, labels[stage])

            if dry_run:
                preview = run_dry(path, options, config=config, progress=advance)
                result = preview.result
            else:
                result = run_ingest(path, options, config=config, out_dir=out, progress=advance)
            _done(progress)
    except (SourceError, ValueError, OSError) as error:
        raise _fail(str(error)) from None
    if json_out:
        console.print_json(json.dumps(result.report.to_dict()))
    else:
        console.print(report_table(result.report))
    if dry_run:
        _print_dry_run(preview)
    elif not json_out:
        console.print(f"wrote {out}/events.parquet, quarantine.parquet, report.json, source.json")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")  # parsed timestamps are UTC
    return str(value)


def _print_dry_run(preview: DryRun) -> None:
    title = f"first {preview.head.height} rows as read (parsed_timestamp in UTC)"
    head = Table(title=title, title_justify="left")
    shown = preview.head.select(c.name for c in preview.head if c.null_count() < c.len())
    for column in shown.columns:
        head.add_column(column)
    for row in shown.iter_rows():
        head.add_row(*[_cell(v) for v in row])
    console.print(head)
    reasons = Table(title="quarantine by reason", title_justify="left")
    for column in ("reason", "rows", "example"):
        reasons.add_column(column)
    for reason, rows, example in preview.examples.iter_rows():
        reasons.add_row(reason, f"{rows:,}", example)
    console.print(reasons)
    info = preview.result.report.timestamps
    order = info.get("order") or "no day/month order to detect (epoch, ISO 8601 or a format given)"
    console.print(f"dates: {order}; naive times read in {info.get('timezone', 'UTC')}")
    console.print("dry run: nothing written")


# --- build ---------------------------------------------------------------------------------


def _parse_weights(pairs: list[str]) -> dict[str, float]:
    weights: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise _fail(f"--weight {pair!r} is not event_type=number")
    return weights


@app.command()
def build(
    data_dir: Annotated[Path, typer.Argument(help="An ingest folder (events.parquet).")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Matrices folder (DIR/matrices).")
    ] = None,
    weight: Annotated[
        list[str] | None, typer.Option("--weight", "-w", help="event_type=weight (repeatable).")
    ] = None,
    half_life_days: Annotated[float | None, typer.Option(help="Time decay half-life.")] = None,
    confidence: Annotated[str, typer.Option(help="log1p or linear.")] = "log1p",
    alpha: Annotated[float, typer.Option(help="Confidence scale.")] = 1.0,
    min_customer_support: Annotated[int, typer.Option(help="Min items per customer.")] = 1,
    min_item_support: Annotated[int, typer.Option(help="Min customers per item.")] = 1,
    quantity_types: Annotated[
        list[str] | None, typer.Option(help="Event types weighted by quantity (repeatable).")
    ] = None,
    previous: Annotated[
        Path | None,
        typer.Option(
            help="Matrices folder whose id maps to keep (default: the target folder's build)."
        ),
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Ignore earlier id maps: number ids from scratch.")
    ] = False,
) -> None:
    """Build the customer x item matrix (+ id maps, feature matrices) from events.parquet.

    Id maps are stable across rebuilds: the maps of the previous build in the target folder
    (or --previous) are kept, known ids keep their index, new ids are appended, and ids no
    longer in the events keep their slot (an empty row/column). --fresh starts over.
    """
    import polars as pl

    from features.ingest import CATALOG_FILE, CUSTOMERS_FILE, EVENTS_FILE
    from features.interactions import InteractionConfig
    from features.matrices import MATRICES_DIR, build_matrices, has_matrices, load_id_maps
    from features.source_options import recorded_weights
    from recsys.tracking import fingerprint_frame

    events_path = data_dir / EVENTS_FILE
    if not events_path.exists():
        raise _fail(f"{events_path} not found: run `recsys ingest ... --out {data_dir}` first")
    target = out or data_dir / MATRICES_DIR
    try:
        config = InteractionConfig(
            half_life_days=half_life_days,
            confidence=confidence,  # type: ignore[arg-type]
            alpha=alpha,
            min_customer_support=min_customer_support,
            min_item_support=min_item_support,
            quantity_types=tuple(quantity_types or ()),
        )
        recorded = recorded_weights(data_dir)  # event types declared at ingest
        if recorded or weight:
            config = config.with_weights(**{**recorded, **_parse_weights(weight or [])})
    except ValueError as error:
        raise _fail(str(error)) from None
    if fresh and previous is not None:
        raise _fail("--fresh and --previous exclude each other")
    maps_from = previous or (None if fresh or not has_matrices(target) else target)
    try:
        customer_map, item_map = load_id_maps(maps_from) if maps_from else (None, None)
    except (FileNotFoundError, ValueError) as error:
        where = "--previous" if previous is not None else f"the id maps of {maps_from}"
        raise _fail(f"{where}: {error}") from None
    catalog_path, customers_path = data_dir / CATALOG_FILE, data_dir / CUSTOMERS_FILE
    with stages(3, f"reading {events_path}") as progress:
        events = pl.read_parquet(events_path)
        catalog = pl.read_parquet(catalog_path) if catalog_path.exists() else None
        customer_attrs = pl.read_parquet(customers_path) if customers_path.exists() else None
        _done(progress)
        _step(progress, f"building matrices from {events.height:,} events")
        matrices = build_matrices(
            events,
            config,
            customers=customer_map,
            items=item_map,
            catalog=catalog,
            customer_attrs=customer_attrs,
        )
        matrices.meta["events_fingerprint"] = fingerprint_frame(events)
        if maps_from is not None:
            matrices.meta["id_maps_from"] = str(maps_from)
        _done(progress)
        _step(progress, f"saving {target}")
        matrices.save(target)
        _done(progress)
    summary = matrices.summary()
    rows = [
        ("events", f"{events.height:,}"),
        ("customers (rows)", f"{summary['customers']:,}"),
        ("items (columns)", f"{summary['items']:,}"),
        ("non-zeros", f"{summary['nnz']:,}"),
        ("density", f"{summary['density']:.6f}"),
        ("confidence", f"{config.confidence} (alpha {config.alpha})"),
        ("half-life (days)", str(config.half_life_days)),
    ]
    if maps_from is not None:
        meta = matrices.meta
        rows.append(
            (
                "id maps kept from",
                f"{maps_from} ({meta['known_customers']:,} customers, {meta['known_items']:,} "
                f"items; appended {meta['new_customers']:,} / {meta['new_items']:,})",
            )
        )
    if "item_features" in summary:
        rows.append(("item features", f"{summary['item_features']:,}"))
    if "customer_features" in summary:
        rows.append(("customer features", f"{summary['customer_features']:,}"))
    rows.append(("saved to", str(target)))
    console.print(_kv_table("interaction matrices", rows))
