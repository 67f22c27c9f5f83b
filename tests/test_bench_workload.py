"""bench/workload.py: the serving benchmark's request types, mix and loads, against a real
server on a small synthetic shop (the figures themselves come from ``bench/serve.py``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from recsys.publish import publish_synthetic, synthetic_customer_ids

# bench/ leaves sys.path again so its script names (ingest, serve, ...) shadow nothing later
BENCH = str(Path(__file__).resolve().parent.parent / "bench")
sys.path.insert(0, BENCH)
try:
    from serve import add_online_state
    from workload import (
        DEFAULT_MIX,
        TYPES,
        Ids,
        email_rate,
        lua_script,
        parse_mix,
        rate_latencies,
        request_paths,
    )
finally:
    sys.path.remove(BENCH)

N_ITEMS = 3_000
needs_wrk = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="needs Debian's wrk (apt-get install -y wrk)"
)


def test_parse_mix_reads_weights_and_names_each_problem() -> None:
    assert parse_mix("home=50, product=20,similar=0") == {"home": 50, "product": 20}
    assert parse_mix("home=50,product=20,cart=10,category=10,price=5,unknown=5") == DEFAULT_MIX
    for text, problem in [
        ("home=50,checkout=3", "'checkout=3' is not TYPE=WEIGHT"),
        ("home", "'home' is not TYPE=WEIGHT"),
        ("home=half", "weight of home must be a whole number"),
        ("home=-1", "weight of home must be >= 0"),
        ("home=1,home=2", "home given twice"),
        ("home=0", "at least one weight must be positive"),
    ]:
        with pytest.raises(ValueError, match=problem):
            parse_mix(text)


@pytest.fixture
def shop(store: Any) -> Ids:
    """A published synthetic shop with online state for 200 customers."""
    publish_synthetic(store, n_customers=1_000, n_items=N_ITEMS, chunk_size=500, version="v1")
    with_state = [str(c) for c in synthetic_customer_ids(1_000)[::5]]
    add_online_state(store, with_state, N_ITEMS)
    return Ids(with_state=with_state, unknown=["new1", "new2"], items=store.item_table("v1"))


def test_every_request_type_answers_with_items(shop: Ids, live_client: Any) -> None:
    paths = request_paths(shop, per_type=30)
    assert set(paths) == set(TYPES)
    for name, some in paths.items():
        assert len(some) == 30
        for path in some:
            response = live_client.get(path)
            assert response.status_code == 200, (name, path, response.text)
            assert response.json()["items"], (name, path)
    assert all("context=product&item_id=sku" in p for p in paths["product"])
    assert all("category=Dept" in p for p in paths["category"])
    assert all("price_min=" in p and "price_max=" in p for p in paths["price"])
    assert all(p.startswith("/v1/customers/new") for p in paths["unknown"])
    assert all(p.startswith("/v1/items/sku") for p in paths["similar"])


def run_wrk(script: str, tmp_path: Path, base: str, *args: str) -> str:
    path = tmp_path / "load.lua"
    path.write_text(script)
    cmd = ["wrk", *args, "-s", str(path), base]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@needs_wrk
def test_wrk_mix_sends_the_weighted_types(shop: Ids, live_client: Any, tmp_path: Path) -> None:
    paths = request_paths(shop, per_type=30)
    base = str(live_client.base_url)
    out = run_wrk(
        lua_script(paths, {"home": 1, "similar": 1}), tmp_path, base, "-t1", "-c4", "-d1s"
    )
    assert " requests in " in out and "Non-2xx" not in out, out
    rate = rate_latencies(
        run_wrk(
            lua_script(paths, {"cart": 3, "price": 1}, rate=100, threads=2),
            tmp_path,
            base,
            "-t2",
            "-c2",
            "-d2s",
        ),
        100,
    )
    assert rate["non_200"] == 0
    assert 150 <= rate["requests"] <= 210  # 100 requests/s for 2 s, not as fast as it can
    assert 80 <= rate["achieved_rps"] <= 102
    assert 0 < rate["p50_ms"] <= rate["p99_ms"] <= rate["max_ms"]


def test_email_rate_records_the_sends(shop: Ids, live_client: Any) -> None:
    base = str(live_client.base_url)
    result = email_rate(base, shop.with_state, batch=50, clients=2, rounds=2, record=True)
    assert len(result["rounds"]) == 2 and result["degraded_batches"] == 0
    assert result["customers_per_s"] > 0
