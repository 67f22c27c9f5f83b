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
types (a weight of 100 for one type measures it alone); with a rate, the same script
sends on a fixed schedule (wrk2's ``-R``, which Debian's wrk lacks, written in the script:
a request delayed by a busy connection counts from its scheduled time, so a stalled server
shows in p99 instead of slowing the load down) and prints every latency, which
``rate_latencies`` reads; ``email_rate`` times ``POST /v1/email/recommendations`` batches
from concurrent clients (httpx).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
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
    """``text`` as a Lua string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


LUA = """
local lists = {{{lists}}}
local cumulative = {{{cumulative}}}
local requests = {{}}
init = function(args)
  math.randomseed(7 + (id or 0))
  for t = 1, #lists do
    requests[t] = {{}}
    for path in string.gmatch(lists[t], "[^\\n]+") do
      requests[t][#requests[t] + 1] = wrk.format("GET", path)
    end
  end
end
local pick = function()
  local r = math.random(1, {total})
  local t = 1
  while cumulative[t] < r do t = t + 1 end
  local some = requests[t]
  return some[math.random(1, #some)]
end
"""

SATURATE = """
request = pick
"""

# wrk2's constant rate in a wrk script: one connection per thread, each on a fixed schedule;
# a request sent late because its connection was still busy counts from its scheduled time
# (no coordinated omission), one sent on time from its send (the timer's whole milliseconds
# are the client's, not the server's); latencies printed by done() as "LATENCY_US t1,t2,..."
CONSTANT_RATE = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct {{ long tv_sec; long tv_nsec; }} bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end
local threads = {{}}
setup = function(thread)
  threads[#threads + 1] = thread
  thread:set("id", #threads)
end
local interval = {interval_us}
local start = nil
local k = 0
local origin = nil
local sent = 0
lat = {{}}
bad = 0
span = 0
delay = function()
  local t = now_us()
  if start == nil then start = t + (id - 1) * interval / {threads} end
  local scheduled = start + k * interval
  k = k + 1
  if scheduled <= t then
    origin = scheduled
    return 0
  end
  origin = nil
  return math.ceil((scheduled - t) / 1000)
end
request = function()
  sent = origin or now_us()
  return pick()
end
response = function(status, headers, body)
  last = now_us()
  span = last - start
  lat[#lat + 1] = math.floor(last - sent)
  if status ~= 200 then bad = bad + 1 end
end
done = function(summary, latency, requests)
  for _, thread in ipairs(threads) do
    io.write("LATENCY_US " .. table.concat(thread:get("lat"), ",") .. "\\n")
    io.write("NON_200 " .. thread:get("bad") .. "\\n")
    io.write("SPAN_US " .. (thread:get("span") or 0) .. "\\n")
  end
end
"""


def lua_script(
    paths: dict[str, list[str]], mix: dict[str, int], rate: float = 0, threads: int = 1
) -> str:
    """A wrk script that picks each request's type by the weights of ``mix``, then one of
    that type's paths; the request strings are built once (init), so wrk, which shares the
    cores with the server, spends no more per request than on ``/healthz``. With ``rate``:
    ``rate`` requests/s in all over ``threads`` threads of one connection each (run it with
    ``-t threads -c threads``; :func:`rate_latencies` reads what it prints)."""
    names = [name for name, w in mix.items() if w > 0]
    cumulative = np.cumsum([mix[name] for name in names]).tolist()
    script = LUA.format(
        lists=", ".join(_lua_string("\n".join(paths[name])) for name in names),
        cumulative=", ".join(str(c) for c in cumulative),
        total=cumulative[-1],
    )
    if not rate:
        return script + SATURATE
    return script + CONSTANT_RATE.format(interval_us=1e6 * threads / rate, threads=threads)


def rate_latencies(wrk_output: str, rate: float) -> dict[str, float]:
    """Latency percentiles (ms) and counts from a constant-rate run's output."""
    latencies: list[float] = []
    bad = 0
    achieved = 0.0  # the threads' rates added up (each: its responses over its own span)
    count = 0
    for line in wrk_output.splitlines():
        if line.startswith("LATENCY_US ") and line.strip() != "LATENCY_US":
            thread = [int(x) / 1000 for x in line.split()[1].split(",")]
            latencies += thread
            count = len(thread)
        elif line.startswith("NON_200 "):
            bad += int(line.split()[1])
        elif line.startswith("SPAN_US ") and count:
            achieved += count / max(float(line.split()[1]) / 1e6, 1e-3)
            count = 0
    if not latencies:
        raise RuntimeError(f"the constant-rate run printed no latency:\n{wrk_output}")
    latencies.sort()
    return {
        "target_rps": rate,
        "achieved_rps": round(achieved, 1),
        "requests": len(latencies),
        "p50_ms": round(_percentile(latencies, 0.50), 3),
        "p99_ms": round(_percentile(latencies, 0.99), 3),
        "max_ms": round(latencies[-1], 3),
        "non_200": bad,
    }


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def _email_rate(
    base: str, batches: list[list[str]], clients: int, record: bool
) -> list[tuple[float, int]]:
    import httpx

    rounds: list[tuple[float, int]] = []  # (customers/s, degraded batches) of each round
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:

        async def post(customer_ids: list[str]) -> bool:
            """Whether the answer was degraded (the service gave up on Redis)."""
            body = {"customer_ids": customer_ids, "n": 10, "record": record}
            response = await client.post("/v1/email/recommendations", json=body)
            answer = response.json()
            if response.status_code != 200 or len(answer["results"]) != len(customer_ids):
                raise RuntimeError(f"email batch: HTTP {response.status_code}: {answer}")
            return bool(answer["degraded"]) or (record and not answer["recorded"])

        for start in range(0, len(batches) - clients + 1, clients):
            group = batches[start : start + clients]
            t0 = time.perf_counter()
            degraded = await asyncio.gather(*(post(batch) for batch in group))
            rounds.append((sum(map(len, group)) / (time.perf_counter() - t0), sum(degraded)))
    return rounds


def email_rate(
    base: str, customers: Sequence[str], batch: int, clients: int, rounds: int, record: bool
) -> dict[str, Any]:
    """Customers/s of ``POST /v1/email/recommendations``: ``rounds`` (after one warm-up) of
    ``clients`` concurrent batches of ``batch`` customers, each batch new customers (taken
    in order from ``customers``, wrapping around). ``customers_per_s`` is the median of the
    rounds whose answers were all whole (0 when none was): a degraded answer (Redis slower
    than the service's timeout; with ``record``, sends not recorded) is quick and useless."""
    need = (rounds + 1) * clients * batch
    ids = [str(customers[k % len(customers)]) for k in range(need)]
    batches = [ids[k : k + batch] for k in range(0, need, batch)]
    measured = asyncio.run(_email_rate(base, batches, clients, record))[1:]
    whole = [rate for rate, degraded in measured if not degraded]
    return {
        "customers_per_s": round(statistics.median(whole)) if whole else 0,
        "rounds": [round(rate) for rate, _ in measured],
        "degraded_batches": sum(degraded for _, degraded in measured),
        "batch": batch,
        "clients": clients,
        "record": record,
    }
