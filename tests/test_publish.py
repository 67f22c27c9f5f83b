"""recsys.publish against a real Redis: publish a real model, switch, roll back, crash-safe
re-run, synthetic publishing, events export round trip, and the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from features.idmap import IdMap
from features.schema import EVENT_SCHEMA
from recsys.candidates import build_item_table
from recsys.cli import app
from recsys.models import build
from recsys.publish import (
    export_events,
    publish,
    publish_synthetic,
    publish_version,
    synthetic_customer_ids,
    write_version,
)
from serving.store import Store, StoreConfig, connect
from serving.types import OnlineEvent

N_CUSTOMERS, N_ITEMS = 60, 25


@pytest.fixture
def store(redis_url: str, redis_prefix: str) -> Store:
    return Store(connect(redis_url), prefix=redis_prefix)


@pytest.fixture(scope="module")
def shop() -> tuple[sp.csr_matrix, IdMap, IdMap, pl.DataFrame]:
    rng = np.random.default_rng(7)
    dense = (rng.random((N_CUSTOMERS, N_ITEMS)) < 0.15).astype(np.float32)
    dense[0] = 0  # a customer whose history is empty (kept by a stable id map): no candidates
    customers = IdMap([f"cust-{j}" for j in range(N_CUSTOMERS)])
    items = IdMap([f"sku-{j}" for j in range(N_ITEMS)])
    catalog = pl.DataFrame(
        {
            "item_id": items.ids.tolist(),
            "category": [f"Dept {j % 2} > Cat {j % 4}" for j in range(N_ITEMS)],
            "price": rng.uniform(1, 50, N_ITEMS),
            "in_stock": [j % 7 != 0 for j in range(N_ITEMS)],
        }
    )
    return sp.csr_matrix(dense), customers, items, catalog


def run_publish(store: Store, shop: tuple, version: str, model_name: str = "itemknn"):  # type: ignore[no-untyped-def]
    hist, customers, items, catalog = shop
    model = build(model_name).fit(hist)
    report = publish_version(
        store, version, model, customers, items, hist, catalog=catalog, progress=False
    )
    return model, report


def test_publish_reads_back_what_the_model_recommends(store: Store, shop: tuple) -> None:
    hist, customers, items, _ = shop
    model, report = run_publish(store, shop, "1")
    assert report.activated and report.previous is None and store.active_version() == "1"
    expected, _ = model.recommend(np.arange(N_CUSTOMERS), 100, exclude=hist)
    with_candidates = int((expected[:, 0] >= 0).sum())
    assert 0 < with_candidates < N_CUSTOMERS  # item-KNN has nothing for customer 0
    assert report.customers == with_candidates and report.items == N_ITEMS
    assert report.similar == N_ITEMS and report.lists > 2
    assert 0 < report.bytes_per_customer <= 1024 and report.customers_per_s > 0
    table = store.item_table("1")
    assert table.item_ids.tolist() == items.ids.tolist()
    assert len(store.customer_view("1", str(customers.ids[0])).candidates) == 0
    for row in (17, N_CUSTOMERS - 1):
        view = store.customer_view("1", str(customers.ids[row]))
        want = expected[row][expected[row] >= 0]
        assert view.candidates.items.tolist() == want.tolist()
        assert not set(view.candidates.items.tolist()) & set(hist[row].indices.tolist())
    sim_items, _ = model.similar_items(np.array([3]), 50)
    assert store.similar("1", [3])[0].items.tolist() == sim_items[0][sim_items[0] >= 0].tolist()
    assert len(store.ranked_list("1", "popular")) == N_ITEMS
    cat = table.categories.index("Dept 1")
    assert set(table.category[store.ranked_list("1", "trending", cat).items]) <= {
        table.categories.index("Dept 1 > Cat 1"),
        table.categories.index("Dept 1 > Cat 3"),
    }


def test_customers_with_an_empty_row_get_no_candidates(store: Store, shop: tuple) -> None:
    hist, customers, _, _ = shop
    model, report = run_publish(store, shop, "1", model_name="popularity")
    # popularity would give customer 0 the global list; their row is empty (a customer the
    # stable id map kept but who is not in this data), so serving's fallback answers them
    assert model.recommend(np.array([0]), 5, exclude=hist[:1])[0][0, 0] >= 0
    assert report.customers == int((np.diff(hist.indptr) > 0).sum()) < N_CUSTOMERS
    assert len(store.customer_view("1", str(customers.ids[0])).candidates) == 0
    assert len(store.customer_view("1", str(customers.ids[1])).candidates) > 0


def test_second_version_switch_rollback_and_idempotent_rerun(store: Store, shop: tuple) -> None:
    customers = shop[1]
    run_publish(store, shop, "1", "itemknn")
    _, report = run_publish(store, shop, "2", "popularity")
    assert report.previous == "1" and store.active_version() == "2"
    cid = str(customers.ids[5])
    v1 = store.customer_view("1", cid).candidates.items.tolist()
    v2 = store.customer_view("2", cid).candidates.items.tolist()
    assert v1 != v2
    _, again = run_publish(store, shop, "2", "popularity")
    assert again.skipped and again.customers == 0 and store.active_version() == "2"
    assert store.rollback() == "1" and store.active_version() == "1"
    assert store.customer_view("1", cid).candidates.items.tolist() == v1


def test_crash_mid_publish_never_activates_and_rerun_recovers(store: Store, shop: tuple) -> None:
    run_publish(store, shop, "1")
    hist, customers, items, catalog = shop
    model = build("itemknn").fit(hist)

    def crashing() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        rows = np.arange(10)
        yield (rows, *model.recommend(rows, 20, exclude=hist[rows]))
        raise KeyboardInterrupt("killed mid-publish")

    table = build_item_table("2", items, catalog)
    with pytest.raises(KeyboardInterrupt):
        write_version(store, "2", table, customers.ids, crashing())
    info = store.version_info("2")
    assert store.active_version() == "1" and info is not None and info.status == "writing"
    assert len(store.customer_view("2", str(customers.ids[3])).candidates) > 0  # half-written
    popular = build("popularity").fit(hist)  # the re-run may differ: it rewrites everything
    report = publish_version(store, "2", popular, customers, items, hist, progress=False)
    assert report.activated and store.active_version() == "2"
    assert report.customers == int((np.diff(hist.indptr) > 0).sum())  # empty rows: none
    assert len(store.customer_view("2", str(customers.ids[1])).candidates) == N_ITEMS - len(
        hist[1].indices
    )


def test_publish_synthetic_reports_rate_and_size(store: Store) -> None:
    report = publish_synthetic(store, n_customers=3_000, n_items=70_000, chunk_size=1_000)
    assert report.customers == 3_000 and report.activated
    assert report.customers_per_s > 0 and 601 < report.bytes_per_customer <= 1024
    view = store.customer_view("synthetic", str(synthetic_customer_ids(3_000)[2_999]))
    assert len(view.candidates) == 100 and view.candidates.items.max() < 70_000


def test_export_events_round_trip(store: Store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    t0 = 1_710_000_000.5
    store.record_events(
        [
            OnlineEvent("c1", "i1", "view", t0, channel="web", session_id="s9"),
            OnlineEvent("c1", "i1", "purchase", t0 + 60, quantity=2.0, price=4.25),
            OnlineEvent("c2", "i7", "email_click", t0 + 61, channel="email"),
        ]
    )
    first = export_events(store, tmp_path, batch=2)
    assert first.events == 3 and not first.possibly_lost and len(first.paths) == 2
    frame = pl.concat([pl.read_parquet(p) for p in first.paths])
    assert dict(frame.schema) == EVENT_SCHEMA
    assert frame["event_type"].to_list() == ["view", "purchase", "email_click"]
    assert frame["timestamp"][1].timestamp() == pytest.approx(t0 + 60)
    assert frame["quantity"].to_list() == [None, 2.0, None]
    assert frame["session_id"].to_list() == ["s9", None, None]
    assert export_events(store, tmp_path).events == 0  # nothing new
    store.record_events([OnlineEvent("c3", "i2", "add_to_cart", t0 + 100)])
    second = export_events(store, tmp_path)
    assert second.events == 1 and second.paths[0] not in first.paths
    assert pl.read_parquet(second.paths[0])["customer_id"].to_list() == ["c3"]
    ingest_view = pl.concat([pl.read_parquet(p) for p in sorted(tmp_path.glob("*.parquet"))])
    assert ingest_view.height == 4


def test_export_after_a_crash_rewrites_the_same_file_and_detects_trimming(  # type: ignore[no-untyped-def]
    redis_url: str, redis_prefix: str, tmp_path
) -> None:
    store = Store(connect(redis_url), prefix=redis_prefix, config=StoreConfig(stream_maxlen=5))
    store.record_events([OnlineEvent("c1", f"i{j}", "view", 1e9 + j) for j in range(3)])
    start = store.exported_id()
    first = export_events(store, tmp_path)
    store.mark_exported(start)  # as if the process died before recording the export
    again = export_events(store, tmp_path)
    assert again.paths == first.paths and again.events == 3
    assert pl.read_parquet(again.paths[0]).height == 3
    # far more events than the stream keeps, before the next export: some are lost
    for j in range(0, 300, 50):
        store.record_events([OnlineEvent("c2", f"i{k}", "view", 1e9 + k) for k in range(j, j + 50)])
    trimmed = export_events(store, tmp_path)
    assert trimmed.possibly_lost and 0 < trimmed.events < 300


def test_cli_rollback_and_export(store: Store, shop: tuple, redis_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    args = ["--redis-url", redis_url, "--prefix", store.prefix]
    failed = runner.invoke(app, ["rollback", *args])
    assert failed.exit_code == 1 and "no previous version" in failed.output
    run_publish(store, shop, "1")
    run_publish(store, shop, "2", "popularity")
    result = runner.invoke(app, ["rollback", *args])
    assert result.exit_code == 0, result.output
    assert "active version: 1 (was 2)" in result.output
    store.record_events([OnlineEvent("c1", "i1", "view", 1_700_000_000.0)])
    result = runner.invoke(app, ["export-events", "--out", str(tmp_path), *args])
    assert result.exit_code == 0 and "1 events" in result.output
    assert len(list(tmp_path.glob("events-*.parquet"))) == 1


def test_cli_publishes_the_registry_champion(  # type: ignore[no-untyped-def]
    store: Store, shop: tuple, redis_url: str, tmp_path, monkeypatch
) -> None:
    from features.matrices import Matrices
    from recsys import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    hist, customers, items, catalog = shop
    catalog.write_parquet(tmp_path / "catalog.parquet")
    model = build("itemknn").fit(hist)
    bundle = tracking.ModelBundle(
        model=model,
        customers=customers,
        items=items,
        matrices=Matrices(hist, customers, items),
        meta={"catalog_path": str(tmp_path / "catalog.parquet")},
    )
    with tracking.run("publish-test") as active:
        tracking.log_model(bundle)
    version = tracking.register(active.info.run_id)
    tracking.promote(version=version)

    args = ["--redis-url", redis_url, "--prefix", store.prefix]
    result = CliRunner().invoke(app, ["publish", *args, "--n-candidates", "5", "--json"])
    assert result.exit_code == 0, result.output
    assert store.active_version() == version
    info = store.version_info(version)
    assert info is not None and info.meta["run_id"] == active.info.run_id
    table = store.item_table(version)
    assert table.categories[table.category[3]] == "Dept 1 > Cat 3"  # catalog from the run
    expected, _ = model.recommend(np.arange(3), 5, exclude=hist[:3])
    view = store.customer_view(version, str(customers.ids[2]))
    assert view.candidates.items.tolist() == expected[2][expected[2] >= 0].tolist()
    missing = CliRunner().invoke(app, ["publish", *args, "--model-version", "99"])
    assert missing.exit_code == 1 and "publish failed" in missing.output


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_publish_reads_a_raw_source_with_the_options_it_was_trained_with(  # type: ignore[no-untyped-def]
    store: Store, tmp_path, monkeypatch, fmt
) -> None:
    """A run that read a raw export in place (``write = false``) with source options: publish
    validates that export again with the same options (trending needs the events), whether
    the export is a CSV or a Parquet file."""
    from recsys import tracking
    from recsys.experiment import ExperimentSpec, train

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    orders = Path(__file__).parent / "fixtures" / "shops" / "grocery_orders.csv"
    if fmt == "parquet":
        pl.read_csv(orders, infer_schema=False).write_parquet(tmp_path / "orders.parquet")
        orders = tmp_path / "orders.parquet"
    spec = ExperimentSpec.from_dict(
        {
            "name": "grocery-in-place",
            "data": {
                "path": str(orders),
                "write": False,
                "mapping": {
                    "Member_number": "customer_id",
                    "itemDescription": "item_id",
                    "Date": "timestamp",
                },
                "set": {"event_type": "purchase"},
            },
            "model": {"name": "itemknn", "params": {"k": 20}},
        }
    )
    outcome = train(spec)
    tracking.promote(version=outcome.version)
    report = publish(store, progress=False)
    assert report.customers == 40 and report.items == 18
    assert len(store.ranked_list(report.version, "trending").items) > 0


def test_a_version_still_being_published_is_not_retired(store: Store, shop: tuple) -> None:
    """Another process publishes version 3 (it holds the lease) while 1 and 2 are activated:
    activating retires old versions, but not one whose publisher is still writing."""
    store.begin_version("3")
    run_publish(store, shop, "1")
    run_publish(store, shop, "2", "popularity")
    info = store.version_info("3")
    assert info is not None and info.status == "writing"
    store.release("3")  # the publisher of 3 died: its version is a crashed write now
    run_publish(store, shop, "4", "popularity")
    retired = store.version_info("3")
    assert retired is not None and retired.status == "retired"
