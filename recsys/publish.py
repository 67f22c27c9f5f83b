"""Publishing a model version to the store, rolling back, and exporting online events.

:func:`publish_version` is the flow: begin version V (clearing leftovers of a crashed run),
write the item table, popular/trending lists, similar items and every customer's
candidates through ``serving.store.Store`` chunk by chunk (the model scores chunk k+1 while
nothing else is held), verify the counts, then switch the ``active`` pointer atomically. The
previous version stays for :func:`rollback`; older ones expire. :func:`publish` does this for
a registered model version (default: the registry's ``champion``).

:func:`publish_synthetic` publishes random-but-realistic candidates for a benchmark and
:func:`export_events` turns the online events stream into a Parquet file of canonical
events (``features.schema.EVENT_SCHEMA``) that ingestion reads.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from features.idmap import IdMap
from features.schema import EVENT_SCHEMA
from recsys.candidates import (
    CandidateConfig,
    build_item_table,
    consumed_matrix,
    customer_candidates,
    decayed_interactions,
    ranked_lists,
    similar_candidates,
)
from recsys.models.base import RecommenderBase
from serving.store import Store, item_width
from serving.types import ItemTable, OnlineEvent

SAMPLE = 200  # customers sampled for verification and MEMORY USAGE


@dataclass
class PublishReport:
    """What a publish did; ``customers_per_s`` counts the encode+write time only."""

    version: str
    previous: str | None = None
    customers: int = 0
    items: int = 0
    similar: int = 0
    lists: int = 0
    payload_bytes: int = 0
    bytes_per_customer: float = float("nan")  # Redis MEMORY USAGE per customer key
    write_seconds: float = 0.0
    total_seconds: float = 0.0
    activated: bool = False
    skipped: str | None = None  # why nothing was written (e.g. already active)

    @property
    def customers_per_s(self) -> float:
        return self.customers / self.write_seconds if self.write_seconds else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "customers_per_s": self.customers_per_s}

    def summary(self) -> str:
        if self.skipped:
            return f"version {self.version}: {self.skipped}"
        state = "active" if self.activated else "written (not activated)"
        return (
            f"version {self.version} {state} (previous: {self.previous}): "
            f"{self.customers:,} customers, {self.items:,} items, {self.similar:,} similar lists, "
            f"{self.lists} popular/trending lists; {self.bytes_per_customer:,.0f} bytes/customer "
            f"in Redis; writes {self.customers_per_s:,.0f} customers/s; "
            f"total {self.total_seconds:,.1f} s"
        )


@dataclass
class _Timer:
    seconds: float = 0.0
    _start: float = field(default=0.0, repr=False)

    def __enter__(self) -> _Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._start


def write_version(
    store: Store,
    version: str,
    table: ItemTable,
    customer_ids: np.ndarray,
    chunks: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    similar: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]] = (),
    lists: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
    activate: bool = True,
) -> PublishReport:
    """The publish flow over already-computed (or lazily computed) candidates.

    ``chunks`` yields ``(rows, items, scores)``: rows index ``customer_ids``. Customers with
    no candidate are not written (the API answers them with the cold-start chain).
    """
    t0 = time.perf_counter()
    report = PublishReport(version=version)
    if store.active_version() == version:
        report.skipped = "already active (publish again under a new version to replace it)"
        return report
    width = item_width(table.n_items)
    store.begin_version(version, meta)
    try:
        store.write_item_table(table)
        report.items = table.n_items
        if lists:
            store.write_lists(version, lists, width=width)
            report.lists = len(lists)
        for rows, items, scores in similar:
            store.write_similar(version, rows, items, scores, width=width)
            report.similar += int((items >= 0).any(axis=1).sum())
        timer = _Timer()
        sample: list[str] = []
        for rows, items, scores in chunks:
            with timer:
                ids = customer_ids[rows].tolist()
                report.payload_bytes += store.write_candidates(
                    version, ids, items, scores, width=width
                )
                written = np.asarray((items >= 0).any(axis=1), dtype=bool)
                report.customers += int(written.sum())
                if len(sample) < SAMPLE:
                    sample += [c for c, ok in zip(ids, written.tolist(), strict=True) if ok][
                        :SAMPLE
                    ]
        report.write_seconds = timer.seconds
        expected = {"customers": report.customers, "similar": report.similar}
        store.finish_version(version, expected, sample_customers=sample[:SAMPLE])
        report.bytes_per_customer = store.bytes_per_customer(version, sample[:SAMPLE])
    except BaseException:
        store.release(version)  # a re-run need not wait for the lease to lapse
        raise
    if activate:
        report.previous = store.activate(version)
        report.activated = True
    report.total_seconds = time.perf_counter() - t0
    return report


def active_rows(history: sp.csr_matrix) -> np.ndarray:
    """Customers with at least one interaction in ``history``. Stable id maps keep a row for
    every customer ever seen (``recsys build``); one absent from the training data has an
    empty row and gets no candidates, so serving treats them as a new customer."""
    return np.flatnonzero(np.diff(history.indptr) > 0)


def publish_version(
    store: Store,
    version: str,
    model: RecommenderBase,
    customers: IdMap,
    items: IdMap,
    history: sp.csr_matrix,
    *,
    catalog: pl.DataFrame | None = None,
    events: pl.DataFrame | None = None,
    config: CandidateConfig | None = None,
    meta: dict[str, Any] | None = None,
    activate: bool = True,
    progress: bool = True,
) -> PublishReport:
    """Generate the candidates of a fitted model and publish them as ``version``.

    ``history``: customers x items (the model's maps) — what each customer already has,
    used for the popular lists. ``events`` (canonical events), when given, make the trending
    lists recency-weighted and decide what is left out of each customer's candidates: the
    items they consumed (``config.exclude_types``: bought, rated) except repeatable ones;
    without events, everything in ``history`` is left out.
    """
    config = config or CandidateConfig()
    if history.shape != (len(customers), len(items)):
        raise ValueError(
            f"history shape {history.shape} != id maps ({len(customers)}, {len(items)})"
        )
    table = build_item_table(version, items, catalog, config.repeatable_categories)
    recent = None
    exclude = history
    if events is not None:
        recent = decayed_interactions(events, customers, items, config.trending_half_life_days)
        exclude = consumed_matrix(events, customers, items, table, config.exclude_types)
    lists = ranked_lists(table, history, config.n_popular, recent)
    return write_version(
        store,
        version,
        table,
        np.asarray(customers.ids, dtype=object),
        customer_candidates(
            model,
            exclude,
            config.n_candidates,
            config.chunk_size,
            rows=active_rows(history),
            progress=progress,
        ),
        similar=similar_candidates(model, config.n_similar, config.chunk_size, progress=progress),
        lists=lists,
        meta=meta,
        activate=activate,
    )


def _read_catalog(path: Path | None) -> pl.DataFrame | None:
    if path is None or not path.exists():
        return None
    from features.ingest import load_catalog

    return load_catalog(path)


def publish(
    store: Store,
    *,
    model_version: str | None = None,
    name: str = "recsys",
    alias: str = "champion",
    catalog: str | Path | None = None,
    events: str | Path | None = None,
    config: CandidateConfig | None = None,
    progress: bool = True,
) -> PublishReport:
    """Publish a registered model version (default: the ``champion`` alias of ``name``).

    The published version is named after the registry version (``"3"``), so a re-run after
    a crash rewrites the same namespace; an already active version is left alone. The
    catalog and events default to the paths the training run recorded.
    """
    from recsys.tracking import load_model_version

    loaded = load_model_version(name=name, alias=alias, version=model_version)
    matrices = loaded.matrices
    if matrices is None:
        raise ValueError(f"model version {loaded.version} holds no training matrices")
    catalog_path = Path(catalog) if catalog else loaded.catalog_path
    events_path = Path(events) if events else loaded.events_path
    events_frame = None
    trained = loaded.meta or {}
    if events_path is not None and events_path.exists():
        # the run's events are validated events, unless it read the shop's export in place
        # (older runs did not record which: a Parquet file was taken as validated)
        raw = events_path.suffix != ".parquet"
        if not events:
            raw = bool(trained.get("events_raw", raw))
        if not raw:
            events_frame = pl.read_parquet(events_path)
        else:  # validate it the same way, with the source options the run used
            from features.ingest import ingest
            from features.source_options import SourceOptions

            recorded = trained.get("source_options")
            options = (
                SourceOptions.from_dict(recorded)
                if recorded
                else SourceOptions(layout=str(trained.get("layout", "canonical")))
            )
            events_frame = ingest(events_path, options).events
    meta = {"model_name": name, "model_version": loaded.version, "run_id": loaded.run_id}
    return publish_version(
        store,
        loaded.version,
        loaded.model,
        loaded.customers,
        loaded.items,
        matrices.interactions,
        catalog=_read_catalog(catalog_path),
        events=events_frame,
        config=config,
        meta=meta,
        progress=progress,
    )


def rollback(store: Store) -> str:
    """Make the previous version active again (and the current one previous)."""
    return store.rollback()


# --- synthetic publishing (benchmarks) -----------------------------------------------------


def synthetic_item_table(
    version: str, n_items: int, n_categories: int = 50, seed: int = 0
) -> ItemTable:
    rng = np.random.default_rng(seed)
    return ItemTable(
        version=version,
        item_ids=np.array([f"sku{j:07d}" for j in range(n_items)], dtype=object),
        category=rng.integers(0, n_categories, n_items).astype(np.int32),
        categories=tuple(f"Dept {c // 10} > Cat {c}" for c in range(n_categories)),
        price=rng.lognormal(3.0, 1.0, n_items).astype(np.float32),
        in_stock=rng.random(n_items) > 0.05,
        created_at=1.7e9 - rng.random(n_items) * 3e7,
        repeatable=rng.random(n_items) < 0.1,
    )


def synthetic_customer_ids(n_customers: int) -> np.ndarray:
    """Ids of the synthetic customers ("cu0000001", ...), the ones publish_synthetic writes."""
    return np.array([f"cu{j:07d}" for j in range(n_customers)], dtype=object)


def _synthetic_chunks(
    n_customers: int, n_items: int, k: int, chunk: int, seed: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    base = np.linspace(1.0, 0.05, k, dtype=np.float32)  # a descending score profile
    for start in range(0, n_customers, chunk):
        rows = np.arange(start, min(start + chunk, n_customers))
        u = rng.random((len(rows), k), dtype=np.float32)
        items = (n_items * u**3).astype(np.int32)  # skewed: popular items in many lists
        scale = rng.uniform(0.5, 2.0, (len(rows), 1)).astype(np.float32)
        scores = base[None, :] * scale
        yield rows, items, scores


def publish_synthetic(
    store: Store,
    n_customers: int = 1_000_000,
    n_items: int = 100_000,
    n_candidates: int = 100,
    n_similar: int = 50,
    version: str = "synthetic",
    seed: int = 0,
    chunk_size: int = 50_000,
    activate: bool = True,
) -> PublishReport:
    """Publish random-but-realistic candidates for ``n_customers`` (ids from
    :func:`synthetic_customer_ids`) through the real write path; returns the report
    (``customers_per_s``, ``bytes_per_customer``). Candidates are generated ahead of the
    timed writes, so the rate measures encoding + Redis writes only."""
    table = synthetic_item_table(version, n_items, seed=seed)
    chunks = list(_synthetic_chunks(n_customers, n_items, n_candidates, chunk_size, seed))
    similar = _synthetic_chunks(n_items, n_items, n_similar, chunk_size, seed + 1)
    lists = ranked_lists(
        table,
        sp.csr_matrix(
            (np.ones(n_items, np.float32), (np.zeros(n_items), np.arange(n_items))),
            shape=(1, n_items),
        ),
        n=200,
    )
    return write_version(
        store,
        version,
        table,
        synthetic_customer_ids(n_customers),
        chunks,
        similar=similar,
        lists=lists,
        meta={"synthetic": True},
        activate=activate,
    )


# --- events export -------------------------------------------------------------------------


@dataclass
class ExportReport:
    paths: list[Path]  # one Parquet file per page of the stream
    events: int
    first_id: str | None
    last_id: str | None
    possibly_lost: bool  # the stream was trimmed past the last export


def events_frame(entries: list[tuple[str, OnlineEvent]]) -> pl.DataFrame:
    """Stream entries (``Store.read_stream``) as canonical events (EVENT_SCHEMA)."""
    cols: dict[str, list[Any]] = {name: [] for name in EVENT_SCHEMA}
    for _, ev in entries:
        cols["customer_id"].append(ev.customer_id)
        cols["item_id"].append(ev.item_id)
        cols["event_type"].append(ev.event_type)
        cols["timestamp"].append(datetime.fromtimestamp(ev.ts, tz=UTC))
        cols["quantity"].append(ev.quantity)
        cols["price"].append(ev.price)
        cols["channel"].append(ev.channel)
        cols["session_id"].append(ev.session_id)
        cols["value"].append(ev.value)
    return pl.DataFrame(cols, schema=EVENT_SCHEMA)


def export_events(store: Store, out_dir: str | Path, batch: int = 100_000) -> ExportReport:
    """Write the stream's events since the last export to ``out_dir/events-<id>.parquet``
    files (one per page of ``batch`` events, named after the id the page starts after).

    The last exported id advances only after a page's file is written, so a crash re-exports
    that page into the same file name (idempotent) and no event is lost or duplicated.
    """
    out = Path(out_dir)
    report = ExportReport([], 0, None, None, store.stream_trimmed_since_export())
    after = store.exported_id()
    while page := store.read_stream(after=after, count=batch):
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"events-{after.replace('-', '_')}.parquet"
        tmp = path.with_suffix(".parquet.tmp")
        events_frame(page).write_parquet(tmp)
        tmp.replace(path)
        after = page[-1][0]
        store.mark_exported(after)
        report.paths.append(path)
        report.events += len(page)
        report.first_id = report.first_id or page[0][0]
        report.last_id = after
    return report
