"""The serving benchmark's requests: each request type, the storefront mix, and the clients
that send them (``bench/serve.py`` runs them; imported as ``workload`` from this directory).

Request types (``TYPES``), each a GET of the API, built from real ids of the published
version: customers that have online state (views and a cart), the catalog's item ids
(popular items more often), its category paths and its prices:

- ``home``: ``/v1/customers/{id}/recommendations?n=10&context=home``
- ``product``: the same with ``context=product&item_id={item}``
- ``cart``: ``context=cart`` (every customer with state has a cart item)
- ``category``: home with ``category=`` a department or a category path of the catalog
- ``price``: home with ``price_min``/``price_max`` spanning 10-30% of the catalog's prices
- ``unknown``: home for customer ids that were never published (cold start)
- ``email``: ``context=email``
- ``similar``: ``/v1/items/{item}/similar?n=10``

Loads: ``lua_script`` writes a wrk script that picks each request from a weighted table of
types (a weight of 100 for one type measures it alone); ``constant_rate`` sends a fixed
schedule of requests with aiohttp (wrk2's constant rate, which Debian's wrk lacks, without
coordinated omission: latency counts from the scheduled send time); ``email_rate`` times
``POST /v1/email/recommendations`` batches from concurrent clients.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import numpy as np

from serving.types import ItemTable

TYPES = ("home", "product", "cart", "category", "price", "unknown", "email", "similar")
DEFAULT_MIX = {"home": 50, "product": 20, "cart": 10, "category": 10, "price": 5, "unknown": 5}
PER_TYPE = 2000  # distinct requests per type


def parse_mix(text: str) -> dict[str, int]:
    """``"home=50,product=20"`` -> ``{"home": 50, "product": 20}``; ValueError naming the
    problem (unknown type, weight not a whole number >= 0, no positive weight)."""
    mix: dict[str, int] = {}
    for part in text.split(","):
        name, sep, weight = part.strip().partition("=")
        if not sep or name not in TYPES:
            raise ValueError(f"--mix: {part.strip()!r} is not TYPE=WEIGHT with TYPE one of {TYPES}")
        if name in mix:
            raise ValueError(f"--mix: {name} given twice")
        try:
            mix[name] = int(weight)
        except ValueError:
            raise ValueError(
                f"--mix: weight of {name} must be a whole number, got {weight!r}"
            ) from None
        if mix[name] < 0:
            raise ValueError(f"--mix: weight of {name} must be >= 0, got {mix[name]}")
    if not any(mix.values()):
        raise ValueError("--mix: at least one weight must be positive")
    return {name: w for name, w in mix.items() if w > 0}


def format_mix(mix: dict[str, int]) -> str:
    return ",".join(f"{name}={w}" for name, w in mix.items())


@dataclass(frozen=True)
class Ids:
    """The real ids requests are built from."""

    with_state: Sequence[str]  # published customers with online state (views and a cart item)
    unknown: Sequence[str]  # customer ids that were never published
    items: ItemTable  # the active version's catalog


def _popular_items(items: ItemTable, rng: np.random.Generator, n: int) -> list[str]:
    """Item ids in stock, popular ones (low index, as the synthetic candidates) more often."""
    stocked = np.flatnonzero(items.in_stock)
    picks = stocked[(len(stocked) * rng.random(n) ** 3).astype(int)]
    return [str(items.item_ids[j]) for j in picks]


def _categories(items: ItemTable) -> list[str]:
    """The catalog's category paths that hold items, and their top-level departments."""
    used = sorted({items.categories[c] for c in np.unique(items.category) if c >= 0})
    departments = sorted({path.split(" > ")[0] for path in used})
    return departments + used


def request_paths(ids: Ids, per_type: int = PER_TYPE, seed: int = 7) -> dict[str, list[str]]:
    """``per_type`` request paths (with query) for each of ``TYPES``."""
    rng = np.random.default_rng(seed)

    def customers(pool: Sequence[str]) -> list[str]:
        return [quote(str(pool[k]), safe="") for k in rng.integers(0, len(pool), per_type)]

    def recs(cid: str, **query: object) -> str:
        return f"/v1/customers/{cid}/recommendations?" + urlencode({"n": 10, **query})

    categories = _categories(ids.items)
    prices = np.sort(ids.items.price[np.isfinite(ids.items.price)])
    paths: dict[str, list[str]] = {}
    paths["home"] = [recs(c, context="home") for c in customers(ids.with_state)]
    paths["product"] = [
        recs(c, context="product", item_id=item)
        for c, item in zip(
            customers(ids.with_state), _popular_items(ids.items, rng, per_type), strict=True
        )
    ]
    paths["cart"] = [recs(c, context="cart") for c in customers(ids.with_state)]
    paths["category"] = [
        recs(c, context="home", category=categories[k])
        for c, k in zip(
            customers(ids.with_state), rng.integers(0, len(categories), per_type), strict=True
        )
    ]
    low = rng.uniform(0.0, 0.7, per_type)
    high = low + rng.uniform(0.1, 0.3, per_type)
    paths["price"] = [
        recs(
            c,
            context="home",
            price_min=round(float(np.quantile(prices, lo)), 2),
            price_max=round(float(np.quantile(prices, hi)), 2),
        )
        for c, lo, hi in zip(customers(ids.with_state), low, high, strict=True)
    ]
    paths["unknown"] = [recs(c, context="home") for c in customers(ids.unknown)]
    paths["email"] = [recs(c, context="email") for c in customers(ids.with_state)]
    paths["similar"] = [
        f"/v1/items/{quote(item, safe='')}/similar?n=10"
        for item in _popular_items(ids.items, rng, per_type)
    ]
    return paths


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


LUA = """
math.randomseed(7)
local lists = {{{lists}}}
local cumulative = {{{cumulative}}}
local requests = {{}}
init = function(args)
  for t = 1, #lists do
    requests[t] = {{}}
    for path in string.gmatch(lists[t], "[^\\n]+") do
      requests[t][#requests[t] + 1] = wrk.format("GET", path)
    end
  end
end
request = function()
  local r = math.random(1, {total})
  local t = 1
  while cumulative[t] < r do t = t + 1 end
  local pick = requests[t]
  return pick[math.random(1, #pick)]
end
"""


def lua_script(paths: dict[str, list[str]], mix: dict[str, int]) -> str:
    """A wrk script that picks each request's type by the weights of ``mix``, then one of
    that type's paths; the request strings are built once (init), so wrk, which shares the
    cores with the server, spends no more per request than on ``/healthz``."""
    names = [name for name, w in mix.items() if w > 0]
    cumulative = np.cumsum([mix[name] for name in names]).tolist()
    return LUA.format(
        lists=", ".join(_lua_string("\n".join(paths[name])) for name in names),
        cumulative=", ".join(str(c) for c in cumulative),
        total=cumulative[-1],
    )


def mixed_sample(
    paths: dict[str, list[str]], mix: dict[str, int], n: int, seed: int = 11
) -> list[str]:
    """``n`` paths drawn as the wrk script draws them (type by weight, then a path)."""
    rng = np.random.default_rng(seed)
    names = list(mix)
    weights = np.array([mix[name] for name in names], dtype=float)
    kinds = rng.choice(len(names), size=n, p=weights / weights.sum())
    return [paths[names[k]][int(rng.integers(len(paths[names[k]])))] for k in kinds]


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def _constant_rate(base: str, paths: list[str], rate: float) -> dict[str, float]:
    import aiohttp

    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    late: list[float] = []  # how late the client sent each request (its own load)
    bad = 0

    async def one(session: aiohttp.ClientSession, path: str, scheduled: float) -> None:
        nonlocal bad
        late.append((loop.time() - scheduled) * 1000)
        try:
            async with session.get(base + path) as response:
                await response.read()
                bad += response.status != 200
        except aiohttp.ClientError:
            bad += 1
        latencies.append((loop.time() - scheduled) * 1000)

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks: set[asyncio.Task[None]] = set()
        start = loop.time() + 0.2
        for k, path in enumerate(paths):
            scheduled = start + k / rate
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(session, path, scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        sent_s = loop.time() - start
        await asyncio.gather(*tasks)
    latencies.sort()
    late.sort()
    return {
        "target_rps": rate,
        "achieved_rps": round(len(paths) / max(sent_s, len(paths) / rate), 1),
        "requests": len(latencies),
        "p50_ms": round(_percentile(latencies, 0.50), 3),
        "p99_ms": round(_percentile(latencies, 0.99), 3),
        "max_ms": round(latencies[-1], 3),
        "non_200": bad,
        "client_late_p99_ms": round(_percentile(late, 0.99), 3),
    }


def constant_rate(base: str, paths: list[str], rate: float) -> dict[str, float]:
    """Send ``paths`` at a constant ``rate`` per second, each at its scheduled time whatever
    the answers before it (as wrk2 -R does); latency percentiles from the scheduled times,
    so a stalled server shows in p99 instead of slowing the schedule down."""
    import uvloop

    return uvloop.run(_constant_rate(base, paths, rate))


async def _email_rate(
    base: str, batches: list[list[str]], clients: int, record: bool
) -> list[float]:
    import aiohttp

    per_round: list[float] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:

        async def post(customer_ids: list[str]) -> None:
            body = {"customer_ids": customer_ids, "n": 10, "record": record}
            async with session.post(f"{base}/v1/email/recommendations", json=body) as response:
                answer = await response.json()
                if response.status != 200 or len(answer["results"]) != len(customer_ids):
                    raise RuntimeError(f"email batch: HTTP {response.status}: {answer}")
                if record and not answer["recorded"]:
                    raise RuntimeError("email batch: record=true but the sends were not recorded")

        for start in range(0, len(batches) - clients + 1, clients):
            group = batches[start : start + clients]
            t0 = time.perf_counter()
            await asyncio.gather(*(post(batch) for batch in group))
            per_round.append(sum(map(len, group)) / (time.perf_counter() - t0))
    return per_round


def email_rate(
    base: str, customers: Sequence[str], batch: int, clients: int, rounds: int, record: bool
) -> dict[str, object]:
    """Customers/s of ``POST /v1/email/recommendations``: ``rounds`` (after one warm-up) of
    ``clients`` concurrent batches of ``batch`` customers, each batch new customers (taken
    in order from ``customers``, wrapping around); the median round and every round."""
    import uvloop

    need = (rounds + 1) * clients * batch
    ids = [str(customers[k % len(customers)]) for k in range(need)]
    batches = [ids[k : k + batch] for k in range(0, need, batch)]
    per_round = uvloop.run(_email_rate(base, batches, clients, record))[1:]
    return {
        "customers_per_s": round(statistics.median(per_round)),
        "rounds": [round(x) for x in per_round],
        "batch": batch,
        "clients": clients,
        "record": record,
    }
