"""Synthetic shop: determinism, sizes, layouts, dirty share, believable structure, real signal."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from features.schema import CATEGORY_SEPARATOR, EVENT_SCHEMA
from features.synth import (
    DIRTY_KINDS,
    RR_EVENTS,
    Shop,
    SynthConfig,
    generate,
    render_events,
    write_shop,
)


@pytest.fixture(scope="module")
def tiny() -> Shop:
    return generate(SynthConfig.preset("tiny"))


def test_same_seed_same_shop_other_seed_other_shop(tiny: Shop) -> None:
    again = generate(SynthConfig.preset("tiny"))
    assert again.events.equals(tiny.events)
    assert again.catalog.equals(tiny.catalog)
    assert again.customers.equals(tiny.customers)
    other = generate(SynthConfig.preset("tiny", seed=1))
    assert not other.events.equals(tiny.events)
    rows, manifest = render_events(tiny, "canonical")
    rows_again, manifest_again = render_events(again, "canonical")
    assert rows.equals(rows_again) and manifest == manifest_again


def test_sizes_schema_and_time_window(tiny: Shop) -> None:
    cfg = tiny.config
    assert tiny.events.schema == pl.Schema(EVENT_SCHEMA)
    assert tiny.events.height == cfg.n_events - round(cfg.n_events * cfg.dirty_fraction)
    assert tiny.catalog.height == cfg.n_items and tiny.customers.height == cfg.n_customers
    assert tiny.catalog["item_id"].is_unique().all()
    assert tiny.customers["customer_id"].is_unique().all()
    assert tiny.events["item_id"].is_in(tiny.catalog["item_id"].implode()).all()
    assert tiny.events["customer_id"].is_in(tiny.customers["customer_id"].implode()).all()
    ts = tiny.events["timestamp"]
    assert ts.is_sorted()
    assert cfg.start <= ts.min() < ts.max() < cfg.end + timedelta(days=2)  # type: ignore[operator]
    for name, expected in (("small", 200_000), ("bench", 5_000_000), ("large", 10_000_000)):
        assert SynthConfig.preset(name).n_events == expected
    sized = generate(SynthConfig(n_customers=300, n_items=400, n_events=7_000, seed=3))
    assert sized.events.height == 7_000 - 140


def test_believable_shop(tiny: Shop) -> None:
    ev, cat = tiny.events, tiny.catalog
    counts = dict(ev["event_type"].value_counts().iter_rows())
    assert set(counts) == {
        "view",
        "add_to_cart",
        "remove_from_cart",
        "purchase",
        "email_open",
        "email_click",
    }
    # funnel: views > carts; purchases need a cart, a store visit or a buy-again habit
    assert counts["view"] > 3 * counts["add_to_cart"] > 0
    assert set(ev["channel"].unique()) == {"web", "app", "email", "store"}
    email = ev.filter(pl.col("event_type").is_in(["email_open", "email_click"]))
    assert (email["channel"] == "email").all()
    # category tree with levels; repeatable consumables; prices per category
    assert cat["category"].str.contains(CATEGORY_SEPARATOR, literal=True).all()
    assert cat["repeatable"].any() and not cat["repeatable"].all()
    assert (cat["price"] > 0).all()
    # nobody sees an item before it exists
    joined = ev.join(cat.select("item_id", "created_at"), on="item_id")
    assert (joined["timestamp"] >= joined["created_at"]).all()
    # power-law popularity: the top 10% of items carry a large share of the views
    views = ev.filter(pl.col("event_type") == "view")["item_id"].value_counts(sort=True)
    top = float(views["count"].head(len(cat) // 10).sum()) / float(views["count"].sum())
    assert top > 0.3
    # consumables are bought again
    buys = ev.filter(pl.col("event_type") == "purchase").join(
        cat.select("item_id", "repeatable"), on="item_id"
    )
    repeats = buys.group_by("customer_id", "item_id", "repeatable").len()
    rep_share = repeats.filter(pl.col("len") > 1).group_by("repeatable").len()
    by_flag = dict(rep_share.iter_rows())
    assert by_flag.get(True, 0) > 3 * by_flag.get(False, 0)


def test_dirty_rows_in_both_layouts(tiny: Shop) -> None:
    for layout in ("canonical", "retailrocket"):
        rows, manifest = render_events(tiny, layout)  # type: ignore[arg-type]
        assert rows.height == manifest["rows"] == manifest["clean_rows"] + manifest["dirty_rows"]
        assert manifest["dirty_fraction"] == pytest.approx(0.02, abs=0.002)
        kinds = set(manifest["dirty"])
        expected = set(DIRTY_KINDS)
        if layout == "retailrocket":
            expected.discard("non_positive_quantity")  # RetailRocket has no quantity column
        assert kinds == expected
        assert rows.schema == pl.Schema({c: pl.String for c in rows.columns})
        dup_count = rows.height - rows.unique().height
        assert dup_count == manifest["expected"]["duplicates"]
    canonical, _ = render_events(tiny, "canonical")
    assert canonical.columns == list(EVENT_SCHEMA)
    assert canonical["timestamp"].str.contains(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$").sum() > 0
    clean = render_events(tiny, "canonical", dirty_fraction=0.0)[0]
    assert clean.height == tiny.events.height


def test_retailrocket_layout_maps_and_drops(tiny: Shop) -> None:
    rows, manifest = render_events(tiny, "retailrocket", dirty_fraction=0.0)
    assert rows.columns == ["timestamp", "visitorid", "event", "itemid", "transactionid"]
    assert set(rows["event"].unique()) == set(RR_EVENTS.values())
    counts = dict(tiny.events["event_type"].value_counts().iter_rows())
    assert manifest["dropped_event_types"] == {
        "email_open": counts["email_open"],
        "remove_from_cart": counts["remove_from_cart"],
    }
    tx = rows.filter(pl.col("event") == "transaction")
    assert tx["transactionid"].null_count() == 0
    assert rows.filter(pl.col("event") != "transaction")["transactionid"].null_count() == (
        rows.height - tx.height
    )
    kept = tiny.events.filter(pl.col("event_type").is_in(list(RR_EVENTS)))
    assert (
        rows["timestamp"]
        .cast(pl.Int64)
        .sort()
        .equals(kept["timestamp"].dt.epoch("ms").sort().alias("timestamp"))
    )


@pytest.mark.parametrize("layout", ["canonical", "retailrocket"])
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_write_shop_files(tiny: Shop, tmp_path: Path, layout: str, fmt: str) -> None:
    paths = write_shop(tiny, tmp_path, layout, fmt)  # type: ignore[arg-type]
    assert set(paths) == {"events", "catalog", "customers", "manifest"}
    manifest = json.loads(paths["manifest"].read_text())

    def read(path: Path) -> pl.DataFrame:
        return pl.read_csv(path, infer_schema=False) if fmt == "csv" else pl.read_parquet(path)

    events = read(paths["events"])
    assert events.height == manifest["rows"]
    assert events.schema == pl.Schema({c: pl.String for c in events.columns})
    catalog = read(paths["catalog"])
    assert catalog.height == tiny.config.n_items
    assert "repeatable" in catalog.columns and "brand" in catalog.columns
    assert read(paths["customers"]).height == tiny.config.n_customers


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="preset"):
        SynthConfig.preset("huge")
    with pytest.raises(ValueError, match="dirty_fraction"):
        SynthConfig(dirty_fraction=0.7)
    with pytest.raises(ValueError, match="n_items"):
        SynthConfig(n_items=10)


def test_truth_tastes_are_concentrated(tiny: Shop) -> None:
    truth = tiny.truth
    assert np.allclose(truth.leaf_preference.sum(axis=1), 1.0)
    # a typical customer puts most of their category mass on a few leaves
    top5 = np.sort(truth.leaf_preference, axis=1)[:, -5:].sum(axis=1)
    assert np.median(top5) > 0.5
    assert truth.affinity(np.array([0, 1])).shape == (2, tiny.config.n_items)
    assert os.environ.get("OPENBLAS_NUM_THREADS") == "1"


def _recall_ndcg_at_10(recs: np.ndarray, truth: list[set[int]]) -> tuple[float, float]:
    recall, ndcg = [], []
    discounts = 1.0 / np.log2(np.arange(2, 12))
    for items, relevant in zip(recs, truth, strict=True):
        hits = np.array([int(i) in relevant for i in items[:10]], dtype=float)
        recall.append(hits.sum() / min(len(relevant), 10))
        ndcg.append(
            (hits * discounts[: len(hits)]).sum() / discounts[: min(len(relevant), 10)].sum()
        )
    return float(np.mean(recall)), float(np.mean(ndcg))


def test_tastes_carry_signal_als_beats_popularity() -> None:
    """Held out: each customer's purchases after a global cut-off (last 20% of the window) of
    items they had not touched before; ALS on the earlier events must clearly beat popularity."""
    from threadpoolctl import threadpool_limits

    from features.interactions import InteractionConfig
    from features.matrices import build_matrices

    implicit_als = pytest.importorskip("implicit.als")
    cfg = SynthConfig(
        n_customers=1500, n_items=600, n_events=60_000, n_top_categories=8, dirty_fraction=0.0
    )
    shop = generate(cfg)
    cut = cfg.start + timedelta(days=int(cfg.days * 0.8))
    train = build_matrices(
        shop.events.filter(pl.col("timestamp") < cut), InteractionConfig(alpha=5.0)
    )
    later = shop.events.filter((pl.col("timestamp") >= cut) & (pl.col("event_type") == "purchase"))
    rows = train.customers.index_of(later["customer_id"])
    cols = train.items.index_of(later["item_id"])
    known = (rows >= 0) & (cols >= 0)
    rows, cols = rows[known], cols[known]
    matrix = train.interactions
    fresh = np.asarray(matrix[rows, cols]).ravel() == 0
    held: dict[int, set[int]] = {}
    for r, c in zip(rows[fresh], cols[fresh], strict=True):
        held.setdefault(int(r), set()).add(int(c))
    users = np.array(sorted(held))
    truth = [held[int(u)] for u in users]
    assert len(users) > 200

    with threadpool_limits(1):
        model = implicit_als.AlternatingLeastSquares(
            factors=32, regularization=0.05, iterations=15, random_state=0
        )
        model.fit(matrix, show_progress=False)
        als_recs, _ = model.recommend(users, matrix[users], N=10, filter_already_liked_items=True)
    popularity = np.asarray((matrix > 0).sum(axis=0)).ravel().astype(float)
    pop_recs = []
    for u in users:
        scores = popularity.copy()
        scores[matrix[u].indices] = -1.0  # same rule as ALS: no already-seen items
        pop_recs.append(np.argsort(-scores, kind="stable")[:10])
    als_recall, als_ndcg = _recall_ndcg_at_10(als_recs, truth)
    pop_recall, pop_ndcg = _recall_ndcg_at_10(np.array(pop_recs), truth)
    assert als_recall > 2.0 * pop_recall and als_recall > 0.15
    assert als_ndcg > 2.0 * pop_ndcg
