"""The client CPU of the store's API reads, on the embedded Redis (``serving.connection``).

    python bench/store_reads.py

A small active version (500 items, 200 customers with 100 candidates, 3 views and a cart
item each), then through ``AsyncStore`` over the API's transport (``serving.api.fastredis``):

- ``customer_raw_active``: the storefront's hot read (pointer + candidates + state, one
  round trip), 20,000 calls, best of 3;
- ``customer_views``: an email batch's read and decode of 1,000 customers, 20 batches.

Prints the client process's CPU time (``time.process_time``: the Redis server's work and
waiting are left out, so a busy machine disturbs the figure less), and one JSON line last.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis.asyncio

from serving.api.fastredis import FastRedis
from serving.connection import connect, embedded_url, stop_embedded
from serving.store import AsyncStore, Store
from serving.types import ItemTable, OnlineEvent

N_ITEMS, N_CUSTOMERS, CALLS, BATCH = 500, 200, 20_000, 1_000


def publish(store: Store) -> list[str]:
    table = ItemTable(
        "v1",
        np.array([f"i{j}" for j in range(N_ITEMS)], dtype=object),
        np.zeros(N_ITEMS, np.int32),
        ("c",),
        np.ones(N_ITEMS, np.float32),
        np.ones(N_ITEMS, bool),
        np.zeros(N_ITEMS),
        np.zeros(N_ITEMS, bool),
    )
    customers = [f"c{j}" for j in range(N_CUSTOMERS)]
    rng = np.random.default_rng(0)
    items = rng.integers(0, N_ITEMS, (N_CUSTOMERS, 100))
    store.begin_version("v1")
    store.write_item_table(table)
    store.write_candidates("v1", customers, items, rng.random(items.shape), width=2)
    store.finish_version("v1", {"customers": N_CUSTOMERS, "items": N_ITEMS})
    store.activate("v1")
    events = [OnlineEvent(c, f"i{k}", "view", 1.7e9 + k) for c in customers for k in range(3)]
    store.record_events(events + [OnlineEvent(c, "i9", "add_to_cart", 1.7e9) for c in customers])
    return customers


async def measure(url: str, customers: list[str]) -> dict[str, float]:
    client: Any = FastRedis(url, redis.asyncio.Redis.from_url(url), 2.0)  # read_raw: the API
    store = AsyncStore(client, prefix="bench")
    for c in customers:  # connect, warm up
        await store.customer_raw_active(c, "v1", mail=False)
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for k in range(CALLS):
            await store.customer_raw_active(customers[k % N_CUSTOMERS], "v1", mail=False)
        best = min(best, time.process_time() - start)
    batch = [customers[k % N_CUSTOMERS] for k in range(BATCH)]
    start = time.process_time()
    for _ in range(20):
        await store.customer_views("v1", batch)
    per_batch = (time.process_time() - start) / 20
    await client.aclose()
    return {"raw_active_us": best / CALLS * 1e6, "views_1000_ms": per_batch * 1e3}


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="store-reads-"))
    try:
        url = embedded_url(data_dir)
        customers = publish(Store(connect(url), prefix="bench"))
        result = asyncio.run(measure(url, customers))
    finally:
        stop_embedded(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
    print(f"customer_raw_active: {result['raw_active_us']:.1f} us client CPU per call")
    print(f"customer_views x {BATCH}: {result['views_1000_ms']:.1f} ms client CPU per batch")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
