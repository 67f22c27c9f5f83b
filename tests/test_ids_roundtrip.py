"""Property: any ids the rule allows (features.ids) go through every step unchanged.

Random customer and item ids (spaces, punctuation, quotes, braces, non-ASCII, 256
characters) -> a shop's CSV export (padded fields included) -> ``features.ingest`` (all
kept, the same strings) -> matrices -> a fitted model published to a real Redis -> the API
behind a real uvicorn (recommendations and similar items by percent-encoded id, ``exclude``
as a repeated parameter, events as JSON) -> ``recsys email-export`` (CSV and JSON lines)
and the events export, read back equal.
"""

from __future__ import annotations

import csv
import itertools
import json
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from id_strategies import valid_ids
from typer.testing import CliRunner

from features.ingest import ingest
from features.matrices import build_matrices
from recsys.cli import app
from recsys.models import build
from recsys.publish import export_events, publish_version
from serving.store import Store

DAY = 86_400


def _export(rows: list[list[str]], path: Path) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["customer_id", "item_id", "event_type", "timestamp"])
        writer.writerows(rows)
    return path


def _in_path(value: str) -> str:
    return quote(value, safe="")


_versions = itertools.count(1)


@given(
    customers=st.lists(valid_ids, min_size=3, max_size=5, unique=True),
    items=st.lists(valid_ids, min_size=6, max_size=9, unique=True),
    pad=st.sampled_from(["", " ", "\t", "\u3000 "]),
)
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_ids_round_trip_ingest_publish_api_export(
    customers: list[str],
    items: list[str],
    pad: str,
    store: Store,
    live_client: httpx.Client,
    redis_url: str,
    redis_prefix: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    api = live_client
    work = tmp_path_factory.mktemp("ids")
    version = f"v{next(_versions)}"
    now = int(time.time())

    # 1. a shop's export: customer k viewed items k, k+1, k+2 (some fields padded)
    rows = []
    for k, customer in enumerate(customers):
        for j in range(3):
            item = items[(k + j) % len(items)]
            padded = (pad + customer, item + pad) if j == 1 else (customer, item)
            rows.append([*padded, "view", str(now - (k * 3 + j + 1) * DAY // 7)])
    result = ingest(_export(rows, work / "events.csv"), out_dir=work / "ingested")
    assert result.report.quarantined == 0, result.quarantine.to_dicts()
    assert result.report.kept == len(rows)
    events = pl.read_parquet(work / "ingested" / "events.parquet")
    assert events["customer_id"].to_list() == [c for c in customers for _ in range(3)]
    assert set(events["item_id"]) <= set(items)

    # 2. matrices -> model -> publish
    matrices = build_matrices(events)
    assert set(matrices.customers.ids.tolist()) == set(customers)
    model = build("itemknn").fit(matrices.interactions)
    report = publish_version(
        store,
        version,
        model,
        matrices.customers,
        matrices.items,
        matrices.interactions,
        events=events,
        progress=False,
    )
    assert report.activated
    assert store.item_table(version).item_ids.tolist() == matrices.items.ids.tolist()

    # 3. the API, ids percent-encoded in paths and query strings
    known = set(events["item_id"])
    for customer in customers:
        r = api.get(f"/v1/customers/{_in_path(customer)}/recommendations", params={"n": 4})
        assert r.status_code == 200, (customer, r.text)
        body = r.json()
        assert body["customer_id"] == customer and body["version"] == version
        assert not body["degraded"]
        answered = [i["item_id"] for i in body["items"]]
        assert answered and set(answered) <= known
        candidates = store.customer_view(version, customer).candidates
        if len(candidates):  # personal: the model's candidates (seeded by earlier
            # examples' online events for a customer id drawn again), not a cold start
            assert body["items"][0]["reason_code"] in {"for_you", "similar_to_viewed"}
        again = api.get(
            f"/v1/customers/{_in_path(customer)}/recommendations",
            params=[("n", "4"), *(("exclude", i) for i in answered)],
        ).json()
        assert not set(answered) & {i["item_id"] for i in again["items"]}
    for item in known:
        r = api.get(f"/v1/items/{_in_path(item)}/similar", params={"n": 3})
        assert r.status_code == 200, (item, r.text)
        body = r.json()
        assert body["item_id"] == item
        assert {i["item_id"] for i in body["items"]} <= known
        r = api.get(
            f"/v1/customers/{_in_path(customers[0])}/recommendations",
            params={"context": "product", "item_id": item, "n": 3},
        )
        assert r.status_code == 200 and item not in {i["item_id"] for i in r.json()["items"]}

    # 4. email-export (CSV and JSON lines) of a segment file holding the ids
    segment = work / "segment.csv"
    with segment.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([["customer_id"], *([c] for c in customers)])
    env = {
        "REDIS_URL": redis_url,
        "RECSYS_REDIS_PREFIX": redis_prefix,
        "RECSYS_FALLBACK_PATH": str(work / "fallback.json"),
    }
    for fmt in ("csv", "jsonl"):
        out = work / f"emails.{fmt}"
        args = ["email-export", str(segment), "-o", str(out), "--format", fmt, "--n", "3"]
        run = CliRunner().invoke(app, args, env=env)
        assert run.exit_code == 0, run.output
        assert "0 invalid" in run.output
        if fmt == "csv":
            with out.open(encoding="utf-8", newline="") as f:
                lines = list(csv.DictReader(f))
            assert list(dict.fromkeys(r["customer_id"] for r in lines)) == customers
            assert {r["item_id"] for r in lines} <= known
        else:
            records = [json.loads(x) for x in out.read_text(encoding="utf-8").split("\n") if x]
            assert [x["customer_id"] for x in records] == customers
            assert {i["item_id"] for x in records for i in x["items"]} <= known

    # 5. online events as JSON -> the events export (Parquet) -> ingest again
    sent = [
        {"customer_id": c, "item_id": items[-1 - k], "event_type": "view"}
        for k, c in enumerate(customers)
    ]
    assert api.post("/v1/events", json={"events": sent}).status_code == 202
    exported = export_events(store, work / "online")
    back = pl.read_parquet(exported.paths)
    assert back.select("customer_id", "item_id").rows() == [
        (e["customer_id"], e["item_id"]) for e in sent
    ]
    again_in = ingest(exported.paths[0])
    assert again_in.report.quarantined == 0
    assert again_in.events.select("customer_id", "item_id").rows() == [
        (e["customer_id"], e["item_id"]) for e in sent
    ]
